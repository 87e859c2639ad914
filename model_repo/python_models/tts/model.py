"""Text to speech on the CPU target: espeak-ng (real formant speech), streamed as 16 kHz audio chunks.

Decoupled: for a ``TEXT`` it sends one response per chunk of ``AUDIO`` (float32 mono, ``chunk_ms`` long)
with ``SAMPLE_RATE``, then an empty response flagged final. Parameters ``voice``, ``chunk_ms`` and
``max_text_chars`` (longer text is refused: split it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import triton
from _common.artifact import load_verified
from _common.errors import BadRequest
from espeak import OUT_RATE, Espeak


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        if not pb_utils.using_decoupled_model_transaction_policy(self.config):
            raise RuntimeError(f"{args['model_name']}: this model streams; set model_transaction_policy.decoupled")
        version_dir = Path(args["model_repository"]) / args["model_version"]
        manifest = load_verified(version_dir)
        recorded = json.loads((version_dir / manifest["main_file"]).read_text())
        params = triton.parameters(self.config)
        self.chunk_samples = OUT_RATE * int(params.get("chunk_ms", "200")) // 1000
        self.max_chars = int(params.get("max_text_chars", "2000"))
        self.espeak = Espeak(recorded["program"], params.get("voice", recorded["voice"]))

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                self._stream(request, sender)
            except Exception as exc:  # noqa: BLE001 - the stream ends with the error, the model lives on
                sender.send(triton.error_response(exc), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def _stream(self, request, sender) -> None:
        texts = triton.strings(triton.input_array(request, "TEXT"), "TEXT")
        if len(texts) != 1:
            raise BadRequest(f"TEXT holds {len(texts)} strings; send exactly one per request")
        text = texts[0].strip()
        if not text:
            raise BadRequest("TEXT is empty; send the words to speak")
        if len(text) > self.max_chars:
            raise BadRequest(
                f"TEXT is {len(text)} characters; this model speaks at most {self.max_chars} per request; "
                f"split the text at sentence boundaries"
            )
        rate = pb_utils.Tensor("SAMPLE_RATE", np.array([OUT_RATE], dtype=np.int32))
        cancelled = getattr(sender, "is_cancelled", lambda: False)
        for chunk in self.espeak.stream(text, self.chunk_samples):
            if cancelled():
                break
            sender.send(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("AUDIO", chunk), rate]))
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
