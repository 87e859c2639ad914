"""Text to speech on the CPU target: hibari (a trained neural voice from the ``hibari-tts`` wheel), streamed as
16 kHz audio chunks.

Decoupled: for a ``TEXT`` it sends one response per chunk of ``AUDIO`` (float32 mono, ``chunk_ms`` long)
with ``SAMPLE_RATE``, then an empty response flagged final. Parameters ``chunk_ms`` and ``max_text_chars``
(longer text is refused: split it). hibari speaks a sentence at a time at 24 kHz; each sentence is resampled to
16 kHz and cut into chunks, so the first chunk leaves before the rest of a long text is spoken. Its noise component
is seeded per request, so the same text always sounds the same.
"""

from __future__ import annotations

from pathlib import Path

from _common import triton, tts
from _common.artifact import load_verified
from _common.pcm import rechunk, resample

OUT_RATE = 16_000


class TritonPythonModel:
    def initialize(self, args):
        from hibari import Hibari

        self.config = triton.parse_config(args)
        triton.require_decoupled(self.config, args["model_name"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        manifest = load_verified(version_dir)
        params = triton.parameters(self.config)
        self.chunk_samples = OUT_RATE * int(params.get("chunk_ms", "200")) // 1000
        self.max_chars = int(params.get("max_text_chars", "2000"))
        self.voice = Hibari(model=str(version_dir / manifest["main_file"]), threads=1)
        self.voice("Ready.")  # loads the G2P's tables now, not in the first caller's turn

    def execute(self, requests):
        return triton.execute_streams(requests, self._stream)

    def _stream(self, request, sender) -> None:
        text = tts.text_to_speak(request, self.max_chars)
        sentences = (resample(audio, self.voice.sample_rate, OUT_RATE) for audio in self.voice.stream(text, seed=0))
        tts.send_audio(sender, triton.requested(request), rechunk(sentences, self.chunk_samples), OUT_RATE)
