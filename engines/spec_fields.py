"""The parts an engine spec is made of (source, input profiles, calibration, LLM and builder settings,
target), the values each may take, and their plain-data forms. ``engines.spec`` re-exports all of it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from platform_spec import gpus, versions

PRECISIONS = ("fp32", "fp16", "bf16", "fp8", "int8")
BUILDERS = ("tensorrt", "onnxruntime", "tensorrt_llm", "lora")
SOURCE_FORMATS = ("onnx", "hf_checkpoint", "lora_adapter")
HARDWARE_COMPATIBILITY = ("none", "ampere_plus", "same_compute_capability")
CALIBRATION_METHODS = ("calibrator", "modelopt")
CALIBRATION_ALGORITHMS = ("entropy", "max")
KV_CACHE_DTYPES = ("auto", "fp8")

# Which runtime loads what each builder produces, and which source format it consumes.
RUNTIME_OF_BUILDER = {
    "tensorrt": "tensorrt",
    "onnxruntime": "onnxruntime",
    "tensorrt_llm": "tensorrt_llm",
    "lora": "tensorrt_llm",
}
SOURCE_FORMAT_OF_BUILDER = {
    "tensorrt": "onnx",
    "onnxruntime": "onnx",
    "tensorrt_llm": "hf_checkpoint",
    "lora": "lora_adapter",
}
# Precisions each builder can produce (ONNX Runtime's CPU provider has no bf16/fp8 kernels).
PRECISIONS_OF_BUILDER = {
    "tensorrt": PRECISIONS,
    "onnxruntime": ("fp32", "fp16", "int8"),
    "tensorrt_llm": ("bf16", "fp16", "fp8"),
    "lora": ("bf16", "fp16", "fp8"),
}

# Bumped when the key derivation itself changes (it then rebuilds everything, on purpose).
KEY_SCHEMA = "engine-key-v2"  # v2: the target's CUDA version is keyed

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")


class SpecError(ValueError):
    """Invalid engine inputs; ``problems`` holds (property, reason) pairs, each naming value and fix."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("invalid engine spec:\n" + "\n".join(f"  - {p}: {r}" for p, r in problems))


@dataclass(frozen=True)
class SourceRef:
    """Where the builder reads its input from, and the sha256 the bytes must have.

    For a directory source (an HF checkpoint, a LoRA adapter) ``sha256`` is the tree digest of
    ``platform_spec.digests.tree_digest``. The URI is not part of the key: moving a file does not rebuild.
    """

    uri: str
    sha256: str
    format: str = "onnx"


@dataclass(frozen=True)
class InputProfile:
    """One input's shape range for a TensorRT optimization profile (dimensions include the batch)."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class Calibration:
    """How an int8/fp8 engine gets its scales.

    ``calibrator``: TensorRT's implicit INT8 entropy calibrator over ``data`` (an .npz of input batches).
    ``modelopt``: NVIDIA ModelOpt inserts explicit Q/DQ nodes into the ONNX (INT8 or FP8) before the build.
    """

    method: str
    data: SourceRef | None = None
    algorithm: str = "entropy"
    batches: int = 32


@dataclass(frozen=True)
class LlmSettings:
    """TensorRT-LLM (PyTorch backend) serving limits and LoRA capacity, written into the serving config."""

    max_batch_size: int = 64
    max_num_tokens: int = 8192
    max_seq_len: int = 8192
    tensor_parallel_size: int = 1
    kv_cache_dtype: str = "auto"
    kv_cache_free_gpu_memory_fraction: float = 0.85
    calibration_samples: int = 512
    enable_lora: bool = False
    max_lora_rank: int = 64
    max_loras: int = 4
    lora_target_modules: tuple[str, ...] = ()
    # For a LoRA adapter: the content key of the base checkpoint it was trained against.
    base_model_key: str | None = None


@dataclass(frozen=True)
class BuilderSettings:
    precision: str = "fp16"
    profiles: tuple[InputProfile, ...] = ()
    workspace_mib: int = 4096
    optimization_level: int = 3
    timing_cache: bool = True
    strongly_typed: bool = False
    version_compatible: bool = False
    hardware_compatibility: str = "none"
    calibration: Calibration | None = None
    llm: LlmSettings | None = None


@dataclass(frozen=True)
class Target:
    """Where the engine will run: a GPU SKU (or the CPU) and the runtime version that loads it.

    ``serving_image`` is recorded for the compatibility gate and the metadata but is not part of the
    key: a new Triton tag with the same TensorRT version does not invalidate engines.
    """

    runtime: str
    runtime_version: str
    gpu_sku: str | None = None
    compute_capability: str | None = None
    serving_image: str = ""
    # The CUDA of the serving runtime: a TensorRT-LLM artifact (and its warm caches) is valid for one
    # TensorRT-LLM/CUDA pair, and a TensorRT plan's kernels come from one CUDA toolkit.
    cuda_version: str | None = None

    @classmethod
    def for_gpu(cls, gpu_sku: str, runtime: str = "tensorrt") -> Target:
        """The target of a GPU pool: compute capability from ``platform_spec.gpus``, versions from
        ``platform_spec.versions``."""
        sku = gpus.GPU_SKUS.get(gpu_sku)
        if sku is None:
            raise SpecError([("gpu_sku", f"{gpu_sku!r} is not a known GPU SKU; use one of {sorted(gpus.GPU_SKUS)}")])
        if runtime == "tensorrt":
            version, serving = versions.TENSORRT_VERSION, versions.SPEECH_RUNTIME
        elif runtime == "tensorrt_llm":
            version, serving = versions.TENSORRT_LLM_VERSION, versions.LLM_RUNTIME
        else:
            raise SpecError([("runtime", f"{runtime!r} does not run on a GPU pool; use tensorrt or tensorrt_llm")])
        return cls(runtime, version, sku.name, sku.compute_capability, serving.image, serving.cuda)

    @classmethod
    def cpu(cls) -> Target:
        """The CPU target (local runs, CI): ONNX Runtime of this environment, served by Triton's Python backend."""
        from importlib.metadata import version

        return cls("onnxruntime", version("onnxruntime"), None, None, versions.TRITON_IMAGE)


def normalize(value: Any) -> Any:
    """Plain JSON-like value with integral floats made ints and tuples made lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: normalize(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    return value


def calibration_to_dict(cal: Calibration | None) -> dict[str, Any] | None:
    if cal is None:
        return None
    return {
        "method": cal.method,
        "data_uri": cal.data.uri if cal.data else None,
        "data_sha256": cal.data.sha256 if cal.data else None,
        "algorithm": cal.algorithm,
        "batches": cal.batches,
    }


def llm_to_dict(llm: LlmSettings | None) -> dict[str, Any] | None:
    if llm is None:
        return None
    return {
        "max_batch_size": llm.max_batch_size,
        "max_num_tokens": llm.max_num_tokens,
        "max_seq_len": llm.max_seq_len,
        "tensor_parallel_size": llm.tensor_parallel_size,
        "kv_cache_dtype": llm.kv_cache_dtype,
        "kv_cache_free_gpu_memory_fraction": llm.kv_cache_free_gpu_memory_fraction,
        "calibration_samples": llm.calibration_samples,
        "enable_lora": llm.enable_lora,
        "max_lora_rank": llm.max_lora_rank,
        "max_loras": llm.max_loras,
        "lora_target_modules": list(llm.lora_target_modules),
        "base_model_key": llm.base_model_key,
    }
