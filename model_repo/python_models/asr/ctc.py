"""Greedy CTC decoding: best symbol per frame, merge repeats, drop blanks, word breaks become spaces."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def greedy_decode(logits: np.ndarray, vocab: Sequence[str], blank_id: int = 0, word_break_id: int = 1) -> str:
    """``logits`` [frames, vocab] -> text."""
    best = logits.argmax(axis=-1)
    keep = np.ones(len(best), dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    chars = []
    for symbol in best[keep]:
        if symbol == blank_id:
            continue
        chars.append(" " if symbol == word_break_id else vocab[symbol])
    return " ".join("".join(chars).split())
