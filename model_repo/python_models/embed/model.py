"""Sentence embeddings: all-MiniLM-L6-v2 (packaged weights, exported to ONNX) on ONNX Runtime.

Input ``TEXT`` (one string per batch item); output ``EMBEDDING`` (384 float32, unit length, so a dot
product is cosine similarity). A dynamic batch is tokenised and encoded as one padded ONNX Runtime
call, which is where batching pays. Parameter ``max_tokens``: a text longer than that is refused
(naming its index and length) rather than silently truncated.
"""

from __future__ import annotations

from pathlib import Path

from _common import embedding, triton
from _common.artifact import load_verified
from sentence_encoder import SentenceEncoder


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        version_dir = Path(args["model_repository"]) / args["model_version"]
        manifest = load_verified(version_dir)
        self.max_tokens = int(triton.parameters(self.config).get("max_tokens", "256"))
        self.encoder = SentenceEncoder(
            str(version_dir / manifest["main_file"]), str(version_dir / "tokenizer.json"), max_tokens=self.max_tokens
        )

    def execute(self, requests):
        return triton.execute_batch(requests, self._parse, self._compute)

    def _parse(self, request):
        return embedding.texts_to_embed(request, self.encoder.token_counts, self.max_tokens)

    def _compute(self, items):
        vectors = self.encoder.encode([text for texts in items for text in texts])
        return embedding.embedding_responses(items, vectors, self.config)
