"""Speech recognition on the CPU target: Whisper tiny.en (trained) through faster-whisper, int8 on CTranslate2.

Inputs ``AUDIO`` (16 kHz mono float32) and ``SAMPLE_RATE``; output ``TRANSCRIPT``. Each utterance is decoded on its
own, without Whisper's voice-activity filter (the pipeline's VAD has cut the speech already) and without conditioning
on earlier text (one utterance, no context to carry). Parameters: ``max_audio_s``, ``beam_size`` (1 = greedy, the
fastest), ``threads`` (CTranslate2 threads of this instance, default 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import triton
from _common.artifact import load_verified

MIN_SAMPLES = 1_600  # 100 ms: shorter audio holds no word


class TritonPythonModel:
    def initialize(self, args):
        from faster_whisper import WhisperModel

        self.config = triton.parse_config(args)
        version_dir = Path(args["model_repository"]) / args["model_version"]
        load_verified(version_dir)
        params = triton.parameters(self.config)
        self.max_seconds = float(params.get("max_audio_s", triton.DEFAULT_MAX_AUDIO_SECONDS))
        self.beam_size = int(params.get("beam_size", "1"))
        threads = int(params.get("threads", "1"))
        self.model = WhisperModel(str(version_dir), device="cpu", compute_type="int8", cpu_threads=threads)

    def execute(self, requests):
        return triton.execute_batch(requests, self._parse, self._compute)

    def _parse(self, request):
        return triton.audio_rows(request, self.config, min_samples=MIN_SAMPLES, max_seconds=self.max_seconds)

    def _compute(self, items):
        responses = []
        for audio in items:
            texts = [self.transcribe(row) for row in audio]
            out = np.array([[t.encode()] for t in texts], dtype=np.object_)
            if not triton.batched(self.config):
                out = out[0]
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("TRANSCRIPT", out)]))
        return responses

    def transcribe(self, audio: np.ndarray) -> str:
        # temperature 0 only: faster-whisper's default re-decodes a low-confidence result by sampling at rising
        # temperatures, so the same audio could come back as different words (and take several decodes to do so).
        segments, _ = self.model.transcribe(
            audio.astype(np.float32), language="en", beam_size=self.beam_size, condition_on_previous_text=False,
            vad_filter=False, without_timestamps=True, temperature=0.0,
        )  # fmt: skip
        return " ".join(segment.text.strip() for segment in segments).strip()
