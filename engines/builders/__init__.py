"""Builders behind one interface (``engines.builders.base.Builder``), looked up by the spec's ``builder``.

Each builder's ``CODE_VERSION`` is part of every content key it produces: bump it when a change to
the builder changes what it writes, and every engine it built is rebuilt on the next ``up``.
"""

from __future__ import annotations

from engines.builders.base import Builder, BuildError
from engines.builders.llm_builder import CODE_VERSION as LLM_CODE_VERSION
from engines.builders.llm_builder import TensorRtLlmBuilder
from engines.builders.lora_builder import CODE_VERSION as LORA_CODE_VERSION
from engines.builders.lora_builder import LoraAdapterBuilder
from engines.builders.onnxruntime_builder import CODE_VERSION as ORT_CODE_VERSION
from engines.builders.onnxruntime_builder import OnnxRuntimeBuilder
from engines.builders.tensorrt_builder import CODE_VERSION as TRT_CODE_VERSION
from engines.builders.tensorrt_builder import TensorRtBuilder

CODE_VERSIONS = {
    "tensorrt": TRT_CODE_VERSION,
    "onnxruntime": ORT_CODE_VERSION,
    "tensorrt_llm": LLM_CODE_VERSION,
    "lora": LORA_CODE_VERSION,
}

_BUILDERS = {
    "tensorrt": TensorRtBuilder,
    "onnxruntime": OnnxRuntimeBuilder,
    "tensorrt_llm": TensorRtLlmBuilder,
    "lora": LoraAdapterBuilder,
}


def builder_for(name: str) -> Builder:
    if name not in _BUILDERS:
        raise BuildError(f"no builder named {name!r}; known builders are {sorted(_BUILDERS)}")
    return _BUILDERS[name]()


__all__ = ["CODE_VERSIONS", "Builder", "BuildError", "builder_for"]


def spec_for(model, builder, source, target, settings=None):
    """An EngineSpec whose builder code version is the installed builder's (what the key must cover)."""
    from engines.spec import BuilderSettings, EngineSpec

    if builder not in CODE_VERSIONS:
        raise BuildError(f"no builder named {builder!r}; known builders are {sorted(CODE_VERSIONS)}")
    return EngineSpec(model, builder, source, target, CODE_VERSIONS[builder], settings or BuilderSettings())
