"""Validation of the audio every speech model takes: mono float32 PCM at 16 kHz, one row per item.

Triton itself rejects a wrong dtype or rank before a model runs; these checks cover what the schema
cannot say: the sample rate, empty or oversized audio, and values that are not float PCM.
"""

from __future__ import annotations

import numpy as np

from _common.errors import BadRequest

# Float PCM lives in [-1, 1]; this much headroom tolerates clipping-free mixes but catches int16-scaled
# samples (values in the thousands) sent as float32, a common client bug that would otherwise "work".
MAX_ABS_SAMPLE = 2.0


def check_audio(
    audio: np.ndarray,
    sample_rates: np.ndarray,
    *,
    expected_rate: int,
    min_samples: int,
    max_seconds: float,
) -> np.ndarray:
    """``audio`` [batch, samples] float32 and ``sample_rates`` [batch, 1] -> the audio, or BadRequest."""
    rates = sorted({int(r) for r in np.asarray(sample_rates).reshape(-1)})
    if rates != [expected_rate]:
        raise BadRequest(
            f"SAMPLE_RATE is {rates[0] if len(rates) == 1 else rates} Hz, but this model takes {expected_rate} Hz "
            f"mono float32 PCM; resample the audio to {expected_rate} Hz before sending it"
        )
    samples = audio.shape[-1]
    if samples == 0:
        raise BadRequest(f"AUDIO is empty (0 samples); send at least {min_samples} samples ({expected_rate} Hz)")
    if samples < min_samples:
        raise BadRequest(
            f"AUDIO has {samples} samples ({samples / expected_rate * 1000:.1f} ms); this model needs at least "
            f"{min_samples} ({min_samples / expected_rate * 1000:.0f} ms at {expected_rate} Hz)"
        )
    max_samples = int(max_seconds * expected_rate)
    if samples > max_samples:
        raise BadRequest(
            f"AUDIO has {samples} samples ({samples / expected_rate:.1f} s); this model accepts at most "
            f"{max_seconds:g} s ({max_samples} samples at {expected_rate} Hz); split the audio into shorter requests"
        )
    if not np.isfinite(audio).all():
        raise BadRequest("AUDIO contains NaN or infinite values; send finite float PCM samples in [-1, 1]")
    peak = float(np.abs(audio).max())
    if peak > MAX_ABS_SAMPLE:
        raise BadRequest(
            f"AUDIO peaks at {peak:g}, but float PCM lies in [-1, 1]; if these are int16 samples, divide by 32768"
        )
    return audio
