"""Speech recognition on the CPU target: a tiny Conformer-CTC on ONNX Runtime, greedy CTC decoding.

Inputs ``AUDIO`` (16 kHz mono float32) and ``SAMPLE_RATE``; output ``TRANSCRIPT``. The weights are
random (real architecture, not trained; see ``artifact.json``): transcripts are transcript-shaped
lower-case words, not what was said. Each utterance is normalised to zero mean and unit variance (what
the encoder expects) and encoded on its own, since padding would change a convolutional front end's
statistics. Parameter: ``max_audio_s``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils
from _common import triton
from _common.artifact import load_verified
from ctc import greedy_decode

MIN_SAMPLES = 1_600  # 100 ms: shorter audio yields no encoder frame worth decoding


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        version_dir = Path(args["model_repository"]) / args["model_version"]
        manifest = load_verified(version_dir)
        details = manifest.get("details", {})
        self.blank_id = int(details.get("blank_id", 0))
        self.word_break_id = int(details.get("word_break_id", 1))
        self.vocab = json.loads((version_dir / "vocab.json").read_text())
        self.max_seconds = float(triton.parameters(self.config).get("max_audio_s", triton.DEFAULT_MAX_AUDIO_SECONDS))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(version_dir / manifest["main_file"]), sess_options=options, providers=["CPUExecutionProvider"]
        )

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
        normalised = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
        (logits,) = self.session.run(["logits"], {"audio": normalised[None, :].astype(np.float32)})
        return greedy_decode(logits[0], self.vocab, self.blank_id, self.word_break_id)
