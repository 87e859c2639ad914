"""Sentence embeddings from the exported MiniLM encoder on ONNX Runtime (the cpu target's embedder).

Free of Triton imports: the same class embeds the retriever's passages at render time and the queries
at serving time. Tokenisation and pooling come from ``_common.text_encoding``, shared with the gpu target.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from _common.text_encoding import encoder_feeds, make_tokenizer, mean_pool_normalise, token_counts


class SentenceEncoder:
    def __init__(self, onnx_path: str, tokenizer_path: str, max_tokens: int = 256, threads: int = 1) -> None:
        import onnxruntime as ort

        self.max_tokens = max_tokens
        self.tokenizer = make_tokenizer(tokenizer_path, max_tokens)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_path, sess_options=options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return token_counts(self.tokenizer, texts, self.max_tokens)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), dim] float32, unit length rows (cosine similarity == inner product)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        feeds = encoder_feeds(self.tokenizer, texts)
        (hidden,) = self.session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})
        return mean_pool_normalise(hidden, feeds["attention_mask"])
