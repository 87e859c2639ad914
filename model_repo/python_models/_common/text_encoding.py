"""Sentence-embedding pre- and post-processing shared by both targets' embedding models.

The cpu target (``embed/``, ONNX Runtime) and the gpu target (``gpu/embed/``, TensorRT engine through
BLS) tokenize and pool with this one piece of code, and the retriever's index is embedded with it at
render time, so a query vector and an index vector are always comparable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def make_tokenizer(path: str, max_tokens: int):
    """The packaged WordPiece tokenizer, padding each batch to its longest text, truncating at ``max_tokens``."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    tokenizer.enable_truncation(max_length=max_tokens)
    pad_id = tokenizer.token_to_id("[PAD]")
    tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
    return tokenizer


def token_counts(tokenizer, texts: Sequence[str], max_tokens: int) -> list[int]:
    """Tokens each text needs, special tokens included, before any truncation."""
    tokenizer.no_truncation()
    try:
        return [len(e.ids) for e in tokenizer.encode_batch(list(texts))]
    finally:
        tokenizer.enable_truncation(max_length=max_tokens)


def encoder_feeds(tokenizer, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """The BERT encoder's inputs ([batch, tokens] int64) for ``texts``."""
    encodings = tokenizer.encode_batch(list(texts))
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


def mean_pool_normalise(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors the mask keeps, scaled to unit length (sentence-transformers' pooling)."""
    mask = attention_mask[..., None].astype(np.float32)
    pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
