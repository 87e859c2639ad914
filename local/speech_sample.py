"""A real spoken utterance for smoke tests, load tests and the local run: espeak-ng speech at 16 kHz.

espeak-ng (Debian package) speaks the text as a 22.05 kHz WAV; sox (Debian package) resamples it to
the platform's 16 kHz mono float32. Optionally a little white noise is mixed in (seeded, so the sample
is reproducible) to give the noise suppressor something to remove.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np

SAMPLE_RATE = 16_000
DEFAULT_TEXT = "What are the opening hours of the support line on weekends?"


class SpeechSampleError(RuntimeError):
    """espeak-ng or sox is missing or failed; the message says which and how to install it."""


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise SpeechSampleError(
            f"{program} is not installed; install the Debian package: apt-get install -y espeak-ng sox"
        )
    return path


def speak(text: str = DEFAULT_TEXT, *, voice: str = "en-us", noise_level: float = 0.0, seed: int = 0) -> np.ndarray:
    """``text`` spoken by espeak-ng as float32 mono PCM at 16 kHz, peak-normalised to 0.5.

    ``noise_level`` is the standard deviation of added white noise (0 = clean speech).
    """
    if not text.strip():
        raise SpeechSampleError("the text to speak is empty; give a sentence")
    if not 0.0 <= noise_level < 1.0:
        raise SpeechSampleError(f"noise_level {noise_level} must be in [0, 1)")
    espeak, sox = _need("espeak-ng"), _need("sox")
    spoken = subprocess.run([espeak, "-v", voice, "--stdout", text], capture_output=True, timeout=60)
    if spoken.returncode != 0 or not spoken.stdout:
        raise SpeechSampleError(f"espeak-ng failed for voice {voice!r}: {spoken.stderr.decode(errors='replace')}")
    resampled = subprocess.run(
        [
            sox,
            "-t",
            "wav",
            "-",
            "-t",
            "wav",
            "-r",
            str(SAMPLE_RATE),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-",
        ],
        input=spoken.stdout,
        capture_output=True,
        timeout=60,
    )
    if resampled.returncode != 0:
        raise SpeechSampleError(
            f"sox could not resample espeak-ng's output: {resampled.stderr.decode(errors='replace')}"
        )
    with wave.open(io.BytesIO(resampled.stdout)) as wav:
        if wav.getframerate() != SAMPLE_RATE or wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise SpeechSampleError(
                f"sox produced {wav.getframerate()} Hz, {wav.getnchannels()} channels, {wav.getsampwidth()} bytes"
            )
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    peak = float(np.abs(pcm).max())
    if peak == 0.0:
        raise SpeechSampleError(f"espeak-ng produced silence for {text!r}")
    audio = pcm * (0.5 / peak)
    if noise_level:
        audio = audio + np.random.default_rng(seed).normal(0.0, noise_level, audio.shape).astype(np.float32)
    return audio.astype(np.float32)
