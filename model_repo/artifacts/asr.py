"""CPU ASR artifact: a tiny Conformer-CTC (transformers' Wav2Vec2ConformerForCTC) with seeded random weights.

No speech-recognition weights ship inside a PyPI package, so the CPU target serves the real
architecture -- a convolutional feature encoder over raw 16 kHz audio, Conformer blocks with rotary
attention, a CTC head over characters -- at toy size with deterministic random weights, exported to
ONNX. It is labelled ``random-weights (real architecture, not trained)``: the transcript it produces is
transcript-shaped (lower-case words from its character vocabulary), not what was said.

The CTC head is initialised so its random output is shaped like a transcript: weights wide enough
(std 0.3) that neighbouring 20 ms frames pick different symbols, and a bias with the blank-dominant
prior every trained CTC head learns (about a third of the frames emit blank, some a word break), so
greedy decoding yields runs of short words instead of one character per frame or nothing at all.
The weights stay random.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np

from model_repo.artifacts import onnx_export
from model_repo.artifacts.sources import int_param, package_version
from model_repo.artifacts.store import ArtifactError, Recipe

# Index 0 is the CTC blank, 1 the word delimiter (rendered as a space); then the characters.
VOCAB = ["<blank>", "|", "'", *"abcdefghijklmnopqrstuvwxyz"]
SAMPLE_RATE = 16_000
DEFAULT_LAYERS = 2
DEFAULT_HIDDEN = 64
HEAD_STD = 0.3
BLANK_BIAS = 7.0
WORD_BREAK_BIAS = 4.0


def recipe(spec, serving, ctx) -> Recipe:
    uri = serving.artifact.uri
    # Only the seed is required; the toy size can be changed through the URI for experiments.
    seed = int_param(spec.name, uri, "seed")
    layers = int_param(spec.name, uri, "layers", DEFAULT_LAYERS)
    hidden = int_param(spec.name, uri, "hidden", DEFAULT_HIDDEN)
    vocab = int_param(spec.name, uri, "vocab", len(VOCAB))
    if vocab != len(VOCAB):
        raise ArtifactError(
            f"model {spec.name!r}: {uri} asks for vocab={vocab}, but the character CTC vocabulary has "
            f"{len(VOCAB)} symbols (blank, word break, apostrophe, a-z); set vocab={len(VOCAB)}"
        )
    if hidden % 4:
        raise ArtifactError(f"model {spec.name!r}: {uri}: hidden={hidden} must be a multiple of 4 attention heads")

    def build(out: Path) -> None:
        _build(out, seed=seed, layers=layers, hidden=hidden)

    return Recipe(
        model=spec.name,
        role="asr",
        uri=uri,
        weights=serving.weights,
        main_file="model.onnx",
        builder_source=inspect.getsource(_build) + inspect.getsource(onnx_export),
        inputs={
            "seed": seed,
            "layers": layers,
            "hidden": hidden,
            "vocab": VOCAB,
            "torch": package_version("torch"),
            "transformers": package_version("transformers"),
            "onnxscript": package_version("onnxscript"),
        },
        build=build,
        details={"sample_rate": SAMPLE_RATE, "frame_stride_samples": 320, "blank_id": 0, "word_break_id": 1},
    )


def _build(out: Path, *, seed: int, layers: int, hidden: int) -> None:
    import torch
    from transformers import Wav2Vec2ConformerConfig, Wav2Vec2ConformerForCTC

    torch.manual_seed(seed)
    config = Wav2Vec2ConformerConfig(
        vocab_size=len(VOCAB),
        pad_token_id=0,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=hidden * 2,
        conv_dim=(32,) * 7,  # 7 strided convolutions: 320 samples (20 ms) per output frame
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        conv_depthwise_kernel_size=15,
        position_embeddings_type="rotary",
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        final_dropout=0.0,
        layerdrop=0.0,
        mask_time_prob=0.0,
    )
    model = Wav2Vec2ConformerForCTC(config).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, HEAD_STD)
        model.lm_head.bias.zero_()
        model.lm_head.bias[0] = BLANK_BIAS
        model.lm_head.bias[1] = WORD_BREAK_BIAS

    class Logits(torch.nn.Module):
        """``audio`` [batch, samples] (zero-mean, unit-variance per utterance) -> ``logits`` [batch, frames, vocab]."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, audio):
            return self.model(input_values=audio).logits

    rng = np.random.default_rng(seed)
    onnx_export.export_checked(
        Logits(),
        example={"audio": rng.standard_normal((1, SAMPLE_RATE), dtype=np.float32)},
        output_names=["logits"],
        dynamic_shapes={"audio": {0: "batch", 1: "samples"}},
        checks=[{"audio": rng.standard_normal((3, 27_311), dtype=np.float32)}],
        path=out / "model.onnx",
    )
    (out / "vocab.json").write_text(json.dumps(VOCAB) + "\n")
