"""Voice activity detection: Silero VAD (the ONNX graph shipped by ``silero-vad``) on ONNX Runtime.

Inputs ``AUDIO`` (16 kHz mono float32) and ``SAMPLE_RATE``; outputs ``SPEECH_PROBS`` (one probability per
32 ms frame of 512 samples) and ``SPEECH_SEGMENTS`` ([start_s, end_s] rows). Parameters: ``threshold``,
``min_silence_ms``, ``min_speech_ms``, ``speech_pad_ms``, ``max_audio_s``.

Silero is a recurrent model over 32 ms frames; dynamic batching pays off by stepping every utterance of
a batch through the network together ([batch, 576] per call, one LSTM state row per utterance), so a
batch of 16 costs about as many ONNX Runtime calls as one utterance.
If a request carries several rows, SPEECH_SEGMENTS is padded with [-1, -1] rows to a common length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils
from _common import triton
from _common.artifact import locate
from segments import speech_segments

SAMPLE_RATE = 16_000
FRAME = 512  # samples per frame at 16 kHz (what the model was trained on)
CONTEXT = 64  # trailing samples of the previous frame the model sees before each frame
# What this model loads from its version directory: config parameter -> default name (the renderer
# checks each one is written or listed in repository.json for the deployment to place).
REQUIRED_FILES = {"artifact_file": "silero_vad.onnx"}


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        version_dir = Path(args["model_repository"]) / args["model_version"]
        params = triton.parameters(self.config)
        model_file, _ = locate(version_dir, params, REQUIRED_FILES["artifact_file"])
        self.threshold = float(params.get("threshold", "0.5"))
        self.min_silence_s = float(params.get("min_silence_ms", "100")) / 1000
        self.min_speech_s = float(params.get("min_speech_ms", "250")) / 1000
        self.pad_s = float(params.get("speech_pad_ms", "30")) / 1000
        self.max_seconds = float(params.get("max_audio_s", triton.DEFAULT_MAX_AUDIO_SECONDS))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_file), sess_options=options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        return triton.execute_batch(requests, self._parse, self._compute)

    def _parse(self, request):
        return triton.audio_rows(request, self.config, min_samples=FRAME, max_seconds=self.max_seconds)

    def _compute(self, items):
        rows = [row for audio in items for row in audio]
        probs = self._speech_probs(rows)
        responses, at = [], 0
        for audio in items:
            n = audio.shape[0]
            item_probs = probs[at : at + n]
            at += n
            frames = -(-audio.shape[1] // FRAME)
            probs_out = np.stack([p[:frames] for p in item_probs]).astype(np.float32)
            segments = [
                speech_segments(
                    p[:frames],
                    frame_s=FRAME / SAMPLE_RATE,
                    total_s=audio.shape[1] / SAMPLE_RATE,
                    threshold=self.threshold,
                    min_speech_s=self.min_speech_s,
                    min_silence_s=self.min_silence_s,
                    pad_s=self.pad_s,
                )
                for p in item_probs
            ]
            longest = max(len(s) for s in segments)
            segments_out = np.full((n, longest, 2), -1.0, dtype=np.float32)
            for i, s in enumerate(segments):
                segments_out[i, : len(s)] = s
            if not triton.batched(self.config):
                probs_out, segments_out = probs_out[0], segments_out[0]
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("SPEECH_PROBS", probs_out),
                        pb_utils.Tensor("SPEECH_SEGMENTS", segments_out),
                    ]
                )
            )
        return responses

    def _speech_probs(self, rows: list[np.ndarray]) -> list[np.ndarray]:
        """Per-frame probabilities of every row, all rows stepped through the network together."""
        frames = [-(-len(r) // FRAME) for r in rows]
        steps = max(frames)
        padded = np.zeros((len(rows), CONTEXT + steps * FRAME), dtype=np.float32)
        for i, r in enumerate(rows):
            padded[i, CONTEXT : CONTEXT + len(r)] = r
        state = np.zeros((2, len(rows), 128), dtype=np.float32)
        sr = np.array(SAMPLE_RATE, dtype=np.int64)
        out = np.zeros((len(rows), steps), dtype=np.float32)
        for step in range(steps):
            window = padded[:, step * FRAME : step * FRAME + CONTEXT + FRAME]
            prob, state = self.session.run(None, {"input": window, "state": state, "sr": sr})
            out[:, step] = prob[:, 0]
        return [out[i, : frames[i]] for i in range(len(rows))]
