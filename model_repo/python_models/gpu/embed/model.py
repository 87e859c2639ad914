"""Sentence embeddings on the gpu target: tokenisation and pooling in Python around the TensorRT encoder.

Same public interface as the cpu model (``TEXT`` -> ``EMBEDDING``, 384 float32, unit length). A dynamic
batch is tokenised together and sent to the ``encoder_model`` engine (``embed_encoder``: the BERT graph
exported from all-MiniLM-L6-v2, built by ``engines/``) in one BLS call; its ``last_hidden_state`` is
mean-pooled and L2-normalised by ``_common.text_encoding`` -- the code the cpu target and the
retriever's index use. Parameters: ``encoder_model``, ``encoder_max_batch`` (the engine's max batch),
``max_tokens``, ``tokenizer_file`` (next to this file, synced from the model store with the engine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _common import bls, embedding, triton
from _common.artifact import required
from _common.text_encoding import encoder_feeds, make_tokenizer, mean_pool_normalise, token_counts

ENCODER_OUTPUT = "last_hidden_state"
# What this model loads from its version directory: config parameter -> default name (the renderer
# checks each one is written or listed in repository.json for the deployment to place).
REQUIRED_FILES = {"tokenizer_file": "tokenizer.json"}


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        params = triton.parameters(self.config)
        version_dir = Path(args["model_repository"]) / args["model_version"]
        tokenizer = required(version_dir, params, REQUIRED_FILES, "tokenizer_file")
        self.encoder_model = params["encoder_model"]
        self.max_tokens = int(params.get("max_tokens", "256"))
        self.encoder_max_batch = int(params.get("encoder_max_batch", "64"))
        self.tokenizer = make_tokenizer(str(tokenizer), self.max_tokens)

    def execute(self, requests):
        return triton.execute_batch(requests, self._parse, self._compute)

    def _parse(self, request):
        return embedding.texts_to_embed(request, self._token_counts, self.max_tokens)

    def _token_counts(self, texts):
        return token_counts(self.tokenizer, texts, self.max_tokens)

    def _compute(self, items):
        texts_in_batch = [text for texts in items for text in texts]
        parts = []
        # The engine's own max batch bounds one call (requests may carry several texts each).
        for first in range(0, len(texts_in_batch), self.encoder_max_batch):
            feeds = encoder_feeds(self.tokenizer, texts_in_batch[first : first + self.encoder_max_batch])
            hidden = bls.call(self.encoder_model, feeds, [ENCODER_OUTPUT])[ENCODER_OUTPUT]
            parts.append(mean_pool_normalise(hidden, feeds["attention_mask"]))
        vectors = np.concatenate(parts)
        return embedding.embedding_responses(items, vectors, self.config)
