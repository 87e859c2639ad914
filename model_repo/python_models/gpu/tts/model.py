"""Text to speech on the gpu target: FastPitch + HiFi-GAN TensorRT engines, streamed as 16 kHz chunks.

Same public interface as the cpu model (decoupled: ``TEXT`` -> ``AUDIO`` chunks + ``SAMPLE_RATE``, then
an empty final response). The text is cut into sentences; each sentence is tokenised
(``text_tokens.py``), turned into a mel spectrogram by ``fastpitch_model`` (``tts_fastpitch``) and into
22.05 kHz audio by ``hifigan_model`` (``tts_hifigan``), resampled to 16 kHz and streamed in
``chunk_ms`` chunks -- the first sentence plays while the next is synthesised. Files next to this one:
``tokens.json`` (symbol table + lexicon from the export step). Parameters: ``fastpitch_model``,
``hifigan_model``, ``chunk_ms``, ``pace`` (speaking rate, 1.0 = trained), ``vocoder_sample_rate``,
``max_text_chars``, and the engines' profile limits ``max_text_tokens`` (a longer sentence is synthesised in
parts cut at word breaks), ``vocoder_min_frames``/``vocoder_max_frames`` (the spectrogram goes to HiFi-GAN in
pieces that fit).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import bls, triton, tts
from _common.artifact import required
from _common.pcm import Rechunker, resample
from text_tokens import PhonemeTokenizer, split_tokens

OUT_RATE = 16_000
# What this model loads from its version directory: config parameter -> default name (the renderer
# checks each one is written or listed in repository.json for the deployment to place).
REQUIRED_FILES = {"tokens_file": "tokens.json"}
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        triton.require_decoupled(self.config, args["model_name"])
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
        # The engines' optimization profiles (rendered from the catalog): longer input is split, shorter padded.
        self.max_tokens = int(params.get("max_text_tokens", "256"))
        self.vocoder_frames = (
            int(params.get("vocoder_min_frames", "16")),
            int(params.get("vocoder_max_frames", "1600")),
        )

    async def execute(self, requests):
        # A coroutine execute: while one turn's sentence is on the GPU engines, the instance serves the others
        # (one synchronous instance spoke one turn at a time).
        await asyncio.gather(*(self._stream(request) for request in requests))

    async def _stream(self, request) -> None:
        sender = request.get_response_sender()
        try:
            text = tts.text_to_speak(request, self.max_chars)
            sentences = [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]
            chunker, wanted = Rechunker(self.chunk_samples), triton.requested(request)
            for sentence in sentences:  # the first sentence plays while the next is synthesised
                if not tts.send_chunks(sender, wanted, chunker.push(await self._speak(sentence)), OUT_RATE):
                    break
            else:
                tts.send_chunks(sender, wanted, chunker.flush(), OUT_RATE)
        except Exception as exc:  # noqa: BLE001 - the stream ends with its error, the model serves on
            sender.send(triton.error_response(exc), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    async def _speak(self, sentence: str) -> np.ndarray:
        ids = self.tokenizer.encode(sentence)
        parts = split_tokens(ids, self.max_tokens, self.tokenizer.space_id)
        audio = [await self._synthesise(part) for part in parts]
        return np.concatenate(audio) if audio else np.zeros(0, dtype=np.float32)

    async def _synthesise(self, ids: list[int]) -> np.ndarray:
        tokens = np.array([ids], dtype=np.int64)
        # NeMo's FastPitch export: a per-token pitch shift (0 keeps the predicted contour) and pace per token.
        mel = await bls.async_call(
            self.fastpitch,
            {
                "text": tokens,
                "pitch": np.zeros(tokens.shape, dtype=np.float32),
                "pace": np.full(tokens.shape, self.pace, dtype=np.float32),
            },
            ["spect", "num_frames"],
        )
        frames = int(mel["num_frames"].reshape(-1)[0])  # a dynamic batch pads spect to its longest member
        spect = mel["spect"][:, :, :frames]
        low, high = self.vocoder_frames
        audio = []
        for start in range(0, frames, high):
            part = spect[:, :, start : start + high]
            width = part.shape[2]
            if width < low:  # pad with the quietest frame the spectrogram has; the padding's audio is cut off
                part = np.concatenate([part, np.repeat(part.min(axis=2, keepdims=True), low - width, axis=2)], axis=2)
            wave = (await bls.async_call(self.hifigan, {"spec": part}, ["audio"]))["audio"].reshape(-1)  # [1,1,n]
            audio.append(wave[: len(wave) * width // part.shape[2]])
        return resample(np.concatenate(audio), self.vocoder_rate, OUT_RATE)
