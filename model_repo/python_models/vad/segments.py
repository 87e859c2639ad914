"""Per-frame speech probabilities -> speech segments, with hysteresis (Silero VAD's own rules).

A segment opens when a frame's probability reaches ``threshold`` and closes after ``min_silence_s`` of
frames below ``threshold - 0.15``; segments shorter than ``min_speech_s`` are dropped; the rest are
widened by ``pad_s`` on each side (clipped to the audio, merged where they touch).
"""

from __future__ import annotations

import numpy as np


def speech_segments(
    probs: np.ndarray,
    *,
    frame_s: float,
    total_s: float,
    threshold: float = 0.5,
    min_speech_s: float = 0.25,
    min_silence_s: float = 0.1,
    pad_s: float = 0.03,
) -> np.ndarray:
    """[n, 2] float32 rows of [start_s, end_s]."""
    low = max(threshold - 0.15, 0.01)
    found: list[list[float]] = []
    start: float | None = None
    silence_from: float | None = None
    for i, p in enumerate(np.asarray(probs, dtype=np.float32)):
        t = i * frame_s
        if p >= threshold:
            silence_from = None
            if start is None:
                start = t
        elif p < low and start is not None:
            if silence_from is None:
                silence_from = t
            if t + frame_s - silence_from >= min_silence_s:
                if silence_from - start >= min_speech_s:
                    found.append([start, silence_from])
                start = silence_from = None
    if start is not None and total_s - start >= min_speech_s:
        found.append([start, total_s])
    padded: list[list[float]] = []
    for begin, end in found:
        begin, end = max(0.0, begin - pad_s), min(total_s, end + pad_s)
        if padded and begin <= padded[-1][1]:
            padded[-1][1] = max(padded[-1][1], end)
        else:
            padded.append([begin, end])
    return np.asarray(padded, dtype=np.float32).reshape(-1, 2)
