"""Sentence embeddings from the exported MiniLM encoder: tokenize, encode with ONNX Runtime, mean-pool, L2-normalise.

Kept free of Triton imports so the same code embeds the retriever's passages at render time and
the queries at serving time (an index embedded any other way would not match its queries).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class SentenceEncoder:
    def __init__(self, onnx_path: str, tokenizer_path: str, max_tokens: int = 256, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(tokenizer_path)
        self.max_tokens = max_tokens
        self.tokenizer.enable_truncation(max_length=max_tokens)
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_path, sess_options=options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text needs, special tokens included, before any truncation."""
        self.tokenizer.no_truncation()
        try:
            return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts))]
        finally:
            self.tokenizer.enable_truncation(max_length=self.max_tokens)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), dim] float32, unit length rows (cosine similarity == inner product)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts))
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        (hidden,) = self.session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})
        return mean_pool_normalise(hidden, feeds["attention_mask"])


def mean_pool_normalise(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors the mask keeps, scaled to unit length (sentence-transformers' pooling)."""
    mask = attention_mask[..., None].astype(np.float32)
    pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
