"""Speech from espeak-ng, sentence by sentence, as 16 kHz float32 chunks.

espeak-ng writes 22.05 kHz 16-bit WAV; it is resampled to 16 kHz (polyphase 320/441, exact) and cut
into fixed-length chunks. Synthesising one sentence at a time lets the first chunk leave before the
rest of a long text is spoken. The text goes in on stdin, never on the command line, so nothing in
it can be read as an option.
"""

from __future__ import annotations

import io
import re
import subprocess
import wave
from collections.abc import Iterator

import numpy as np
from _common.pcm import rechunk, resample

OUT_RATE = 16_000
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def sentences(text: str) -> list[str]:
    return [s for s in (part.strip() for part in _SENTENCE_END.split(text)) if s]


class Espeak:
    def __init__(self, program: str, voice: str, timeout_s: float = 30.0) -> None:
        self.program = program
        self.voice = voice
        self.timeout_s = timeout_s

    def synthesise(self, sentence: str) -> np.ndarray:
        done = subprocess.run(
            [self.program, "-v", self.voice, "--stdout"],
            input=sentence.encode("utf-8"),
            capture_output=True,
            timeout=self.timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.program} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
        with wave.open(io.BytesIO(done.stdout)) as wav:
            rate = wav.getframerate()
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        return resample(pcm, rate, OUT_RATE)

    def stream(self, text: str, chunk_samples: int) -> Iterator[np.ndarray]:
        """Chunks of at most ``chunk_samples``; only the last chunk of the text may be shorter."""
        return rechunk((self.synthesise(s) for s in sentences(text)), chunk_samples)
