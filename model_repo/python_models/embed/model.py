"""Sentence embeddings: all-MiniLM-L6-v2 (packaged weights, exported to ONNX) on ONNX Runtime.

Input ``TEXT`` (one string per batch item); output ``EMBEDDING`` (384 float32, unit length, so a dot
product is cosine similarity). A dynamic batch is tokenised and encoded as one padded ONNX Runtime
call, which is where batching pays. Parameter ``max_tokens``: a text longer than that is refused
(naming its index and length) rather than silently truncated.
"""

from __future__ import annotations

from pathlib import Path

import triton_python_backend_utils as pb_utils
from _common import triton
from _common.artifact import load_verified
from _common.errors import BadRequest
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
        texts = triton.strings(triton.input_array(request, "TEXT"), "TEXT")
        for i, count in enumerate(self.encoder.token_counts(texts)):
            if count > self.max_tokens:
                raise BadRequest(
                    f"TEXT item {i} is {count} tokens long; this model embeds at most {self.max_tokens} tokens "
                    f"(about {self.max_tokens * 3} characters of English); split the text into shorter passages"
                )
        return texts

    def _compute(self, items):
        vectors = self.encoder.encode([text for texts in items for text in texts])
        responses, at = [], 0
        for texts in items:
            rows = vectors[at : at + len(texts)]
            at += len(texts)
            if not triton.batched(self.config):
                rows = rows[0]
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("EMBEDDING", rows)]))
        return responses
