"""PCM helpers of the speech-output models: exact-ratio resampling and fixed-size streaming chunks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from math import gcd

import numpy as np


def resample(pcm: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling by the exact rational ratio (22050 -> 16000 is 320/441), float32 out."""
    if from_rate == to_rate:
        return pcm.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(from_rate, to_rate)
    return resample_poly(pcm.astype(np.float64), to_rate // g, from_rate // g).astype(np.float32)


def rechunk(pieces: Iterable[np.ndarray], chunk_samples: int) -> Iterator[np.ndarray]:
    """Re-cut a stream of audio pieces into chunks of ``chunk_samples``; only the last may be shorter.
    A chunk leaves as soon as it is full, so the first one does not wait for the whole text."""
    pending = np.zeros(0, dtype=np.float32)
    for piece in pieces:
        pending = np.concatenate([pending, piece.astype(np.float32, copy=False)])
        while len(pending) >= chunk_samples:
            yield pending[:chunk_samples]
            pending = pending[chunk_samples:]
    if len(pending):
        yield pending
