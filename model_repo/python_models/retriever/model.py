"""Retrieval: a FAISS inner-product index over the knowledge base, searched with a query embedding.

Inputs ``EMBEDDING`` (384 float32, from the ``embed`` model) and optional ``TOP_K``; outputs ``PASSAGES``
(the passage texts, best first) and ``SCORES`` (cosine similarity). A dynamic batch is one FAISS search.
Parameters ``top_k_default`` and ``max_top_k``.
"""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import triton_python_backend_utils as pb_utils
from _common import triton
from _common.artifact import locate, required
from _common.errors import BadRequest

# What this model loads from its version directory: config parameter -> default name (the renderer
# checks each one is written or listed in repository.json for the deployment to place).
REQUIRED_FILES = {"artifact_file": "index.faiss", "passages_file": "passages.jsonl"}


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        version_dir = Path(args["model_repository"]) / args["model_version"]
        params = triton.parameters(self.config)
        index_file, _ = locate(version_dir, params, REQUIRED_FILES["artifact_file"])
        self.top_k_default = int(params.get("top_k_default", "3"))
        self.max_top_k = int(params.get("max_top_k", "16"))
        faiss.omp_set_num_threads(1)
        self.index = faiss.read_index(str(index_file))
        # Row i of the index is line i of the passages file (written together, synced together).
        lines = required(version_dir, params, REQUIRED_FILES, "passages_file").read_text().splitlines()
        self.passages = [json.loads(line)["text"] for line in lines if line.strip()]
        if len(self.passages) != self.index.ntotal:
            raise RuntimeError(
                f"{version_dir}: index has {self.index.ntotal} vectors but passages.jsonl has {len(self.passages)} "
                f"lines; render the model repository again"
            )

    def execute(self, requests):
        return triton.execute_batch(requests, self._parse, self._compute)

    def _parse(self, request):
        vectors = triton.input_array(request, "EMBEDDING").astype(np.float32, copy=False)
        vectors = vectors.reshape(-1, self.index.d)
        norms = np.linalg.norm(vectors, axis=1)
        if not np.isfinite(vectors).all() or (norms < 1e-6).any():
            raise BadRequest(
                "EMBEDDING must be a finite, non-zero vector (an L2-normalised output of the embed model); "
                f"got norms {np.round(norms, 4).tolist()}"
            )
        top_k = triton.optional_number(request, "TOP_K", self.top_k_default, 1, self.max_top_k)
        return vectors, min(top_k, self.index.ntotal)

    def _compute(self, items):
        queries = np.concatenate([vectors for vectors, _ in items])
        deepest = max(k for _, k in items)
        scores, ids = self.index.search(np.ascontiguousarray(queries), deepest)
        responses, at = [], 0
        for vectors, k in items:
            rows = slice(at, at + len(vectors))
            at += len(vectors)
            texts = np.array([[self.passages[i].encode() for i in row[:k]] for row in ids[rows]], dtype=np.object_)
            best = scores[rows, :k].astype(np.float32)
            if not triton.batched(self.config):
                texts, best = texts[0], best[0]
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("PASSAGES", texts), pb_utils.Tensor("SCORES", best)]
                )
            )
        return responses
