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


class Rechunker:
    """Audio pieces in, chunks of ``chunk_samples`` out as soon as each is full; ``flush`` gives the shorter rest."""

    def __init__(self, chunk_samples: int) -> None:
        self.chunk_samples = chunk_samples
        self.pending = np.zeros(0, dtype=np.float32)

    def push(self, piece: np.ndarray) -> list[np.ndarray]:
        self.pending = np.concatenate([self.pending, piece.astype(np.float32, copy=False)])
        full = len(self.pending) // self.chunk_samples
        chunks = [self.pending[i * self.chunk_samples : (i + 1) * self.chunk_samples] for i in range(full)]
        self.pending = self.pending[full * self.chunk_samples :]
        return chunks

    def flush(self) -> list[np.ndarray]:
        rest, self.pending = self.pending, np.zeros(0, dtype=np.float32)
        return [rest] if len(rest) else []


def rechunk(pieces: Iterable[np.ndarray], chunk_samples: int) -> Iterator[np.ndarray]:
    """Re-cut a stream of audio pieces into chunks of ``chunk_samples``; only the last may be shorter.
    A chunk leaves as soon as it is full, so the first one does not wait for the whole text."""
    chunker = Rechunker(chunk_samples)
    for piece in pieces:
        yield from chunker.push(piece)
    yield from chunker.flush()
