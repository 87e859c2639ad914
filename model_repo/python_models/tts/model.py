"""Text to speech on the CPU target: espeak-ng (real formant speech), streamed as 16 kHz audio chunks.

Decoupled: for a ``TEXT`` it sends one response per chunk of ``AUDIO`` (float32 mono, ``chunk_ms`` long)
with ``SAMPLE_RATE``, then an empty response flagged final. Parameters ``voice``, ``chunk_ms`` and
``max_text_chars`` (longer text is refused: split it).
"""

from __future__ import annotations

import json
from pathlib import Path

from _common import triton, tts
from _common.artifact import load_verified
from espeak import OUT_RATE, Espeak


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        triton.require_decoupled(self.config, args["model_name"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        manifest = load_verified(version_dir)
        recorded = json.loads((version_dir / manifest["main_file"]).read_text())
        params = triton.parameters(self.config)
        self.chunk_samples = OUT_RATE * int(params.get("chunk_ms", "200")) // 1000
        self.max_chars = int(params.get("max_text_chars", "2000"))
        self.espeak = Espeak(recorded["program"], params.get("voice", recorded["voice"]))

    def execute(self, requests):
        return triton.execute_streams(requests, self._stream)

    def _stream(self, request, sender) -> None:
        text = tts.text_to_speak(request, self.max_chars)
        tts.send_audio(sender, self.espeak.stream(text, self.chunk_samples), OUT_RATE)
