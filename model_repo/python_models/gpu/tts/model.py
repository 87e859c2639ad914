"""Text to speech on the gpu target: FastPitch + HiFi-GAN TensorRT engines, streamed as 16 kHz chunks.

Same public interface as the cpu model (decoupled: ``TEXT`` -> ``AUDIO`` chunks + ``SAMPLE_RATE``, then
an empty final response). The text is cut into sentences; each sentence is tokenised
(``text_tokens.py``), turned into a mel spectrogram by ``fastpitch_model`` (``tts_fastpitch``) and into
22.05 kHz audio by ``hifigan_model`` (``tts_hifigan``), resampled to 16 kHz and streamed in
``chunk_ms`` chunks -- the first sentence plays while the next is synthesised. Files next to this one:
``tokens.json`` (symbol table + lexicon from the export step). Parameters: ``fastpitch_model``,
``hifigan_model``, ``chunk_ms``, ``pace`` (speaking rate, 1.0 = trained), ``vocoder_sample_rate``,
``max_text_chars``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import bls, triton
from _common.artifact import required
from _common.errors import BadRequest
from _common.pcm import rechunk, resample
from text_tokens import PhonemeTokenizer

OUT_RATE = 16_000
# What this model loads from its version directory: config parameter -> default name (the renderer
# checks each one is written or listed in repository.json for the deployment to place).
REQUIRED_FILES = {"tokens_file": "tokens.json"}
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        if not pb_utils.using_decoupled_model_transaction_policy(self.config):
            raise RuntimeError(f"{args['model_name']}: this model streams; set model_transaction_policy.decoupled")
        params = triton.parameters(self.config)
        version_dir = Path(args["model_repository"]) / args["model_version"]
        table = required(version_dir, params, REQUIRED_FILES, "tokens_file")
        self.tokenizer = PhonemeTokenizer(json.loads(table.read_text(encoding="utf-8")))
        self.fastpitch = params["fastpitch_model"]
        self.hifigan = params["hifigan_model"]
        self.pace = float(params.get("pace", "1.0"))
        self.vocoder_rate = int(params.get("vocoder_sample_rate", "22050"))
        self.chunk_samples = OUT_RATE * int(params.get("chunk_ms", "200")) // 1000
        self.max_chars = int(params.get("max_text_chars", "2000"))

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
        sentences = [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]
        rate = pb_utils.Tensor("SAMPLE_RATE", np.array([OUT_RATE], dtype=np.int32))
        cancelled = getattr(sender, "is_cancelled", lambda: False)
        for chunk in rechunk((self._speak(s) for s in sentences), self.chunk_samples):
            if cancelled():
                break
            sender.send(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("AUDIO", chunk), rate]))
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def _speak(self, sentence: str) -> np.ndarray:
        ids = self.tokenizer.encode(sentence)
        if not ids:
            return np.zeros(0, dtype=np.float32)
        tokens = np.array([ids], dtype=np.int64)
        mel = bls.call(
            self.fastpitch,
            {"text": tokens, "pace": np.full(tokens.shape, self.pace, dtype=np.float32)},
            ["spect", "num_frames"],
        )
        frames = int(mel["num_frames"].reshape(-1)[0])
        audio = bls.call(self.hifigan, {"spec": mel["spect"][:, :, :frames]}, ["audio"])["audio"][0]
        return resample(audio, self.vocoder_rate, OUT_RATE)
