"""Noise suppression: RNNoise (``librnnoise.so`` shipped by ``pyrnnoise``), 16 kHz in and out.

Input ``AUDIO`` (16 kHz mono float32) and ``SAMPLE_RATE``; output ``AUDIO``, denoised, same length and
alignment. RNNoise is a C library with per-utterance recurrent state and no batch dimension, so a
dynamic batch is denoised utterance by utterance (Triton still saves the per-request overhead).
Parameter: ``max_audio_s``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import triton
from _common.artifact import locate
from rnnoise import RNNoise

MIN_SAMPLES = 160  # one 10 ms frame at 16 kHz
# What this model loads from its version directory: config parameter -> default name (the renderer
# checks each one is written or listed in repository.json for the deployment to place).
REQUIRED_FILES = {"artifact_file": "librnnoise.so"}


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        version_dir = Path(args["model_repository"]) / args["model_version"]
        params = triton.parameters(self.config)
        library, _ = locate(version_dir, params, REQUIRED_FILES["artifact_file"])
        self.max_seconds = float(params.get("max_audio_s", triton.DEFAULT_MAX_AUDIO_SECONDS))
        self.rnnoise = RNNoise(library)

    def execute(self, requests):
        return triton.execute_batch(requests, self._parse, self._compute)

    def _parse(self, request):
        return triton.audio_rows(request, self.config, min_samples=MIN_SAMPLES, max_seconds=self.max_seconds)

    def _compute(self, items):
        responses = []
        for audio in items:
            clean = np.stack([self.rnnoise.denoise(row) for row in audio])
            if not triton.batched(self.config):
                clean = clean[0]
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("AUDIO", clean)]))
        return responses
