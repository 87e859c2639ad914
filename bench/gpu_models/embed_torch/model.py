"""Sentence embeddings in PyTorch on the instance's device: the all-MiniLM-L6-v2 architecture, random weights.

Input ``TEXT`` (one string per batch item), output ``EMBEDDING`` (384 float32, unit length): the public
interface of the catalog's ``embed`` model. A dynamic batch is tokenised (the model's own
``tokenizer.json``, next to this file), encoded as one padded fp16 forward pass on the GPU the
instance is placed on (``KIND_GPU``) -- or fp32 on the CPU for a ``KIND_CPU`` instance -- mean-pooled
and L2-normalised.

The encoder is BERT as MiniLM-L6 configures it (``config.json`` next to this file: word, position and
token-type embeddings with LayerNorm, then post-norm Transformer layers with GELU), written with
``torch.nn`` alone so it runs wherever PyTorch does. Weights are seeded random (parameter ``seed``),
which changes no timing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils
from torch import nn


class MiniLM(nn.Module):
    def __init__(self, cfg: dict) -> None:
        super().__init__()
        hidden = cfg["hidden_size"]
        self.word = nn.Embedding(cfg["vocab_size"], hidden)
        self.position = nn.Embedding(cfg["max_position_embeddings"], hidden)
        self.token_type = nn.Embedding(cfg["type_vocab_size"], hidden)
        self.norm = nn.LayerNorm(hidden, eps=cfg["layer_norm_eps"])
        layer = nn.TransformerEncoderLayer(
            hidden,
            cfg["num_attention_heads"],
            cfg["intermediate_size"],
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=False,
            layer_norm_eps=cfg["layer_norm_eps"],
        )
        self.encoder = nn.TransformerEncoder(layer, cfg["num_hidden_layers"], enable_nested_tensor=False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word(ids) + self.position(positions)[None] + self.token_type(torch.zeros_like(ids))
        return self.encoder(self.norm(x), src_key_padding_mask=mask == 0)


def _device(args) -> torch.device:
    if args.get("model_instance_kind") == "GPU":
        return torch.device(f"cuda:{args['model_instance_device_id']}")
    return torch.device("cpu")


class TritonPythonModel:
    def initialize(self, args):
        from tokenizers import Tokenizer

        self.config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in self.config.get("parameters", {}).items()}
        here = Path(args["model_repository"]) / args["model_version"]
        self.max_tokens = int(params.get("max_tokens", "256"))
        self.tokenizer = Tokenizer.from_file(str(here / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.device = _device(args)
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        torch.manual_seed(int(params.get("seed", "0")))
        with torch.device(self.device):
            model = MiniLM(json.loads((here / "config.json").read_text()))
        self.model = model.to(dtype).eval()
        self.batched = int(self.config.get("max_batch_size", 0)) > 0

    def execute(self, requests):
        texts, counts = [], []
        for request in requests:
            items = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
            decoded = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in items]
            texts.extend(decoded)
            counts.append(len(decoded))
        encodings = self.tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long, device=self.device)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            hidden = self.model(ids, mask)
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            # DLPack instead of .numpy(): independent of the numpy ABI torch was built against.
            vectors = np.from_dlpack(torch.nn.functional.normalize(pooled.float(), dim=1).cpu())
        responses, at = [], 0
        for count in counts:
            rows = np.ascontiguousarray(vectors[at : at + count], dtype=np.float32)
            at += count
            responses.append(
                pb_utils.InferenceResponse([pb_utils.Tensor("EMBEDDING", rows if self.batched else rows[0])])
            )
        return responses
