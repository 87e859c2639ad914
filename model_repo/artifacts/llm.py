"""CPU LLM artifact: a tiny LlamaForCausalLM with seeded random weights over a byte-level vocabulary.

The CPU target serves the real Llama architecture (RMSNorm, rotary attention, SwiGLU MLP, KV cache)
through PyTorch/Transformers, at toy size with deterministic random weights; each variant has its own
seed. It is labelled ``random-weights (real architecture, not trained)``: it streams text, not answers.

Vocabulary (``vocab=260``): ids 0-255 are UTF-8 bytes, then four special tokens, so no tokenizer file
is needed and any prompt encodes losslessly.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from model_repo.artifacts.sources import int_param, package_version
from model_repo.artifacts.store import ArtifactError, Recipe

SPECIAL_TOKENS = {"pad": 256, "bos": 257, "eos": 258, "unk": 259}
BYTE_VOCAB = 256 + len(SPECIAL_TOKENS)
MAX_POSITIONS = 1024


def recipe(spec, serving, ctx) -> Recipe:
    uri = serving.artifact.uri
    # Only the seed is required (one per variant); the toy size can be changed through the URI.
    seed = int_param(spec.name, uri, "seed")
    layers = int_param(spec.name, uri, "layers", 2)
    hidden = int_param(spec.name, uri, "hidden", 64)
    heads = int_param(spec.name, uri, "heads", 4)
    vocab = int_param(spec.name, uri, "vocab", BYTE_VOCAB)
    if vocab != BYTE_VOCAB:
        raise ArtifactError(
            f"model {spec.name!r}: {uri} asks for vocab={vocab}; the byte-level vocabulary has {BYTE_VOCAB} "
            f"ids (256 bytes + {len(SPECIAL_TOKENS)} special tokens); set vocab={BYTE_VOCAB}"
        )
    if hidden % heads:
        raise ArtifactError(f"model {spec.name!r}: {uri}: hidden={hidden} is not divisible by heads={heads}")

    def build(out: Path) -> None:
        _build(out, seed=seed, layers=layers, hidden=hidden, heads=heads)

    return Recipe(
        model=spec.name,
        role="llm",
        uri=uri,
        weights=serving.weights,
        main_file="model.safetensors",
        builder_source=inspect.getsource(_build),
        inputs={
            "seed": seed,
            "layers": layers,
            "hidden": hidden,
            "heads": heads,
            "vocab": vocab,
            "torch": package_version("torch"),
            "transformers": package_version("transformers"),
        },
        build=build,
        details={"tokenizer": "bytes", "special_tokens": SPECIAL_TOKENS, "max_positions": MAX_POSITIONS},
    )


def _build(out: Path, *, seed: int, layers: int, hidden: int, heads: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=BYTE_VOCAB,
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=MAX_POSITIONS,
        pad_token_id=SPECIAL_TOKENS["pad"],
        bos_token_id=SPECIAL_TOKENS["bos"],
        eos_token_id=SPECIAL_TOKENS["eos"],
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(str(out), safe_serialization=True)
