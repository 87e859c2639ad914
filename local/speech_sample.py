"""The one speech-sample maker: a real spoken utterance for the local run, benchmarks and the tests.

espeak-ng (Debian package) speaks the text as a 22.05 kHz WAV; sox (Debian package) resamples it to
the platform's 16 kHz mono float32. Optionally it is padded with known silence and noise is mixed in
(white noise seeded, or sox's repeatable pink noise) to give the noise suppressor and the VAD
something to work on, with the speech's true bounds measured on the clean signal.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class SpeechSample:
    """A spoken utterance with known silence around it, clean and with noise mixed in."""

    clean: np.ndarray  # the (padded) speech, no noise
    noisy: np.ndarray  # the same plus noise (what a microphone in a noisy room hears)
    speech_start_s: float  # where the speech really is (from the clean signal's energy)
    speech_end_s: float

    def noise_only(self) -> slice:
        """Samples of the lead-in that hold noise and no speech (a margin before the onset)."""
        return slice(int(0.2 * SAMPLE_RATE), int((self.speech_start_s - 0.2) * SAMPLE_RATE))

    def speech(self) -> slice:
        return slice(int(self.speech_start_s * SAMPLE_RATE), int(self.speech_end_s * SAMPLE_RATE))


def speech_bounds(clean: np.ndarray, frame: int = 160, floor_db: float = -40.0) -> tuple[float, float]:
    """First and last 10 ms frame whose RMS is within ``floor_db`` of the loudest frame, in seconds."""
    frames = clean[: len(clean) // frame * frame].reshape(-1, frame)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))
    active = np.flatnonzero(rms > rms.max() * 10 ** (floor_db / 20))
    return active[0] * frame / SAMPLE_RATE, (active[-1] + 1) * frame / SAMPLE_RATE


def _sox_pcm(sox: str, args: list[str], effects: Sequence[str] = (), stdin: bytes | None = None) -> np.ndarray:
    """Run sox writing a 16 kHz mono 16-bit WAV to stdout; return it as float32 in [-1, 1)."""
    out = ["-t", "wav", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer", "-"]
    done = subprocess.run([sox, *args, *out, *effects], input=stdin, capture_output=True, timeout=60)
    if done.returncode != 0:
        raise SpeechSampleError(f"sox {' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
    with wave.open(io.BytesIO(done.stdout)) as wav:
        if wav.getframerate() != SAMPLE_RATE or wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise SpeechSampleError(
                f"sox produced {wav.getframerate()} Hz, {wav.getnchannels()} channels, {wav.getsampwidth()} bytes"
            )
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def speech_sample(
    text: str = DEFAULT_TEXT,
    *,
    voice: str = "en-us",
    lead_silence_s: float = 0.0,
    tail_silence_s: float = 0.0,
    peak: float | None = 0.5,
    white_noise: float = 0.0,
    pink_noise_volume: float = 0.0,
    seed: int = 0,
) -> SpeechSample:
    """``text`` spoken by espeak-ng as float32 mono PCM at 16 kHz, padded with silence, with noise mixed in.

    ``peak`` normalises the speech's peak (None keeps espeak-ng's level). ``white_noise`` is the standard
    deviation of seeded white noise; ``pink_noise_volume`` the amplitude of sox's pink noise (its
    repeatable mode, so the same every run). Both 0: ``noisy`` is ``clean``.
    """
    if not text.strip():
        raise SpeechSampleError("the text to speak is empty; give a sentence")
    for name, level in (("white_noise", white_noise), ("pink_noise_volume", pink_noise_volume)):
        if not 0.0 <= level < 1.0:
            raise SpeechSampleError(f"{name} {level} must be in [0, 1)")
    if lead_silence_s < 0 or tail_silence_s < 0:
        raise SpeechSampleError(f"silence padding {lead_silence_s}, {tail_silence_s} s must not be negative")
    espeak, sox = _need("espeak-ng"), _need("sox")
    spoken = subprocess.run([espeak, "-v", voice, "--stdout", text], capture_output=True, timeout=60)
    if spoken.returncode != 0 or not spoken.stdout:
        raise SpeechSampleError(f"espeak-ng failed for voice {voice!r}: {spoken.stderr.decode(errors='replace')}")
    pcm = _sox_pcm(sox, ["-t", "wav", "-"], stdin=spoken.stdout)
    loudest = float(np.abs(pcm).max())
    if loudest == 0.0:
        raise SpeechSampleError(f"espeak-ng produced silence for {text!r}")
    if peak is not None:
        pcm = pcm * (peak / loudest)
    lead, tail = (np.zeros(round(s * SAMPLE_RATE), np.float32) for s in (lead_silence_s, tail_silence_s))
    clean = np.concatenate([lead, pcm, tail]).astype(np.float32)
    noisy = clean.copy()
    if white_noise:
        noisy += np.random.default_rng(seed).normal(0.0, white_noise, clean.shape).astype(np.float32)
    if pink_noise_volume:
        seconds = f"{clean.size / SAMPLE_RATE}"
        noise = _sox_pcm(sox, ["-R", "-n"], ["synth", seconds, "pinknoise", "vol", str(pink_noise_volume)])
        noisy[: noise.size] += noise[: clean.size]
    start, end = speech_bounds(clean)
    return SpeechSample(clean, noisy.astype(np.float32), start, end)


def speak(text: str = DEFAULT_TEXT, *, voice: str = "en-us", noise_level: float = 0.0, seed: int = 0) -> np.ndarray:
    """``text`` spoken by espeak-ng as float32 mono PCM at 16 kHz, peak-normalised to 0.5, with seeded white
    noise of standard deviation ``noise_level`` (0 = clean speech)."""
    return speech_sample(text, voice=voice, white_noise=noise_level, seed=seed).noisy
