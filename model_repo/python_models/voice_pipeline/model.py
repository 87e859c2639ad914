"""The voice turn, as one decoupled BLS model: audio in -> ANC -> VAD -> ASR -> retrieval -> LLM -> TTS.

Inputs ``AUDIO`` (16 kHz mono float32, one utterance), ``SAMPLE_RATE``, optional ``MAX_TOKENS``.
Responses (streamed, over gRPC):

1. ``TRANSCRIPT``, ``SPEECH_SEGMENTS`` (where VAD heard speech, seconds) and ``PASSAGES`` (retrieved
   knowledge-base passages the answer is grounded on);
2. ``TEXT_OUTPUT`` for every piece the LLM streams, and -- interleaved, as soon as a phrase of the answer
   is complete -- ``AUDIO`` chunks of that phrase spoken by TTS (16 kHz float32), so the caller hears the
   start of the answer while the rest is still being generated;
3. an empty response flagged final.

If VAD finds no speech, the first response carries an empty transcript and the stream ends.
Every stage is a model called by name (``*_model`` parameters), so each is also reachable on its own.
A stage is called through BLS on this server, unless the config also names the GPU pool that serves it
(``<role>_endpoint_pool``, rendered for the gpu target when the stage lives on another pool's server:
the LLM); then it is called over gRPC at that pool's endpoint from ``TRITON_GRPC_ENDPOINTS``
(``_common.remote``), resolved when the model loads, so a pod that cannot reach it never turns ready.
The streaming stages (LLM, TTS) of this server are streamed over gRPC at its own endpoint
(``TRITON_OWN_GRPC_ENDPOINT``), not through BLS: ``_common.bls`` says why.
Parameters: ``max_audio_s``, ``top_k``, ``phrase_chars`` (a phrase goes to TTS at a sentence end, at the
first word break past this length, or at twice this length), ``max_prompt_chars``, ``remote_timeout_s``
(longest wait for a gRPC stage's next response, default 60), ``asr_pad_s`` (the speech span VAD found, widened by
this much on each side before ASR, default 0.5: a span cut at the first phoneme's onset loses it -- "How do I" heard
as "I'll do my"), ``asr_audio`` (``denoised``, the default, or ``original``: which audio ASR hears; VAD always hears the
denoised one. Measured with Whisper tiny.en on espeak-ng speech, RNNoise's output costs words the original keeps).

Every turn is measured (``_common.turn_metrics``): the latency waterfall from the end of speech to the first audio
and the end of the turn, and counters of turns, cancels and failures by stage, on Triton's metrics port.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import bls, remote, triton
from _common.errors import BadRequest
from _common.turn_metrics import TurnClock, TurnMetrics

SAMPLE_RATE = 16_000
MIN_SAMPLES = SAMPLE_RATE // 4  # 250 ms: less cannot hold a word
SENTENCE_END = ".?!"
ROLES = ("anc", "vad", "asr", "embed", "retriever", "llm", "tts")


def _batch1(value: np.ndarray) -> np.ndarray:
    # anc, vad, asr, embed and retriever use Triton batching (max_batch_size > 0): inputs carry a
    # leading batch dimension, here of one.
    return value[None, ...]


def _text(value: str) -> np.ndarray:
    return np.array([value.encode("utf-8")], dtype=np.object_)


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        triton.require_decoupled(self.config, args["model_name"])
        params = triton.parameters(self.config)
        missing = [f"{role}_model" for role in ROLES if f"{role}_model" not in params]
        if missing:
            raise RuntimeError(f"{args['model_name']}: config parameters {missing} must name the models to call")
        self.models = {role: params[f"{role}_model"] for role in ROLES}
        # role -> host:port of the server that serves it, for stages on another GPU pool's server.
        self.endpoints = {
            role: remote.resolve_endpoint(args["model_name"], key, params[key])
            for role in ROLES
            if (key := f"{role}{remote.ENDPOINT_POOL_SUFFIX}") in params
        }
        self.own_endpoint = remote.own_endpoint(args["model_name"])
        self.remote = remote.RemoteModels(timeout_s=float(params.get("remote_timeout_s", "60")))
        self.max_seconds = float(params.get("max_audio_s", triton.DEFAULT_MAX_AUDIO_SECONDS))
        self.top_k = int(params.get("top_k", "3"))
        self.phrase_chars = int(params.get("phrase_chars", "48"))
        self.max_prompt_chars = int(params.get("max_prompt_chars", "768"))
        self.asr_pad = int(float(params.get("asr_pad_s", "0.5")) * SAMPLE_RATE)
        self.asr_audio = params.get("asr_audio", "denoised")
        if self.asr_audio not in ("denoised", "original"):
            raise RuntimeError(
                f"{args['model_name']}: parameter asr_audio is {self.asr_audio!r}; use denoised or original"
            )
        self.metrics = TurnMetrics(pb_utils, args["model_name"])

    async def execute(self, requests):
        # A coroutine execute: Triton hands this instance the next requests while earlier turns still wait on
        # their stages, so one instance serves as many turns at once as the stages behind it allow.
        arrived = time.monotonic()  # every request of this call had arrived by now: their clocks start here
        await asyncio.gather(*(self._measured_turn(request, arrived) for request in requests))

    async def _measured_turn(self, request, arrived: float) -> None:
        sender = request.get_response_sender()
        clock = TurnClock(arrived)
        self.metrics.begun()
        try:
            await self._turn(request, sender, clock)
        except Exception as exc:  # noqa: BLE001 - the turn ends with its error, the model serves on
            self.metrics.failed(clock.stage)
            sender.send(triton.error_response(exc), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return
        # Recorded before the final flag: a caller that scrapes the metrics when its stream ends finds its turn.
        self.metrics.finished(clock)
        # A cancelled turn ends here too: the client's stream closes at once instead of at its timeout.
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    async def _turn(self, request, sender, clock: TurnClock) -> None:
        """Every response of one turn but the final flag (the caller sends it, also when the caller cancels)."""
        audio = triton.audio_rows(request, self.config, min_samples=MIN_SAMPLES, max_seconds=self.max_seconds)[0]
        max_tokens = triton.input_array(request, "MAX_TOKENS", required=False)
        if max_tokens is not None and not (max_tokens.size == 1 and 1 <= int(max_tokens.reshape(-1)[0]) <= 512):
            raise BadRequest(f"MAX_TOKENS is {max_tokens.reshape(-1).tolist()}; send one value in [1, 512]")
        await self._respond(audio, max_tokens, _Turn(sender, triton.requested(request), self.metrics), clock)

    async def _respond(self, audio: np.ndarray, max_tokens, turn: _Turn, clock: TurnClock) -> None:
        rate = np.array([SAMPLE_RATE], dtype=np.int32)
        clean = await self._call(clock, "anc", {"AUDIO": _batch1(audio), "SAMPLE_RATE": _batch1(rate)}, ["AUDIO"])
        clean = clean["AUDIO"][0]
        vad = await self._call(
            clock, "vad", {"AUDIO": _batch1(clean), "SAMPLE_RATE": _batch1(rate)}, ["SPEECH_SEGMENTS"]
        )
        segments = vad["SPEECH_SEGMENTS"][0]
        segments = segments[segments[:, 0] >= 0]  # drop the [-1, -1] padding rows
        # The trailing silence after the last speech had passed before the utterance was sent.
        clock.speech_ended(len(clean) / SAMPLE_RATE - float(segments[-1, 1]) if len(segments) else 0.0)
        if len(segments) == 0:
            turn.send(TRANSCRIPT=_text(""), SPEECH_SEGMENTS=segments, PASSAGES=np.zeros(0, dtype=np.object_))
            return

        # Recognise the speech span (first onset to last offset), widened so the first and last phonemes stay whole.
        start = max(0, int(segments[0, 0] * SAMPLE_RATE) - self.asr_pad)
        end = min(len(clean), int(segments[-1, 1] * SAMPLE_RATE) + self.asr_pad)
        speech = (clean if self.asr_audio == "denoised" else audio)[start:end]
        asr = await self._call(clock, "asr", {"AUDIO": _batch1(speech), "SAMPLE_RATE": _batch1(rate)}, ["TRANSCRIPT"])
        transcript = asr["TRANSCRIPT"].reshape(-1)[0].decode("utf-8")
        clock.mark("transcript")
        if turn.cancelled():
            return

        embedding = (await self._call(clock, "embed", {"TEXT": _batch1(_text(transcript))}, ["EMBEDDING"]))["EMBEDDING"]
        found = await self._call(
            clock,
            "retriever",
            {"EMBEDDING": embedding, "TOP_K": _batch1(np.array([self.top_k], dtype=np.int32))},
            ["PASSAGES", "SCORES"],
        )
        passages = [p.decode("utf-8") for p in found["PASSAGES"][0]]
        turn.send(
            TRANSCRIPT=_text(transcript),
            SPEECH_SEGMENTS=segments.astype(np.float32),
            PASSAGES=np.array([p.encode("utf-8") for p in passages], dtype=np.object_),
        )

        llm_inputs = {"TEXT_INPUT": _text(self._prompt(transcript, passages))}
        if max_tokens is not None:
            llm_inputs["MAX_TOKENS"] = max_tokens.reshape(1).astype(np.int32)
        phrase = ""
        clock.mark("llm_request")
        # aclosing(): a turn the caller cancels also cancels the LLM request mid-answer.
        async with aclosing(self._stream(clock, "llm", llm_inputs, ["TEXT_OUTPUT"])) as pieces:
            async for piece in pieces:
                clock.mark("first_token")
                if turn.cancelled():
                    return
                text = piece["TEXT_OUTPUT"].reshape(-1)[0]
                turn.send(TEXT_OUTPUT=np.array([text], dtype=np.object_))
                phrase += text.decode("utf-8", errors="replace")
                if self._phrase_complete(phrase):
                    if not await self._speak(clock, turn, phrase):
                        return
                    clock.stage = "llm"
                    phrase = ""
        await self._speak(clock, turn, phrase)

    def _phrase_complete(self, phrase: str) -> bool:
        """Speak at a sentence end, at a word break once the phrase is long enough, or -- for text without
        breaks -- at twice that length, so the first audio never waits for the whole answer."""
        if phrase.rstrip()[-1:] in SENTENCE_END:
            return True
        return (len(phrase) >= self.phrase_chars and phrase.endswith(" ")) or len(phrase) >= 2 * self.phrase_chars

    def _prompt(self, transcript: str, passages: list[str]) -> str:
        """Grounding passages, then the user's words, within the LLM's prompt budget. The LLM model wraps this in its
        chat template as the user's message (an instruct model), so no "User:/Assistant:" framing here."""
        question = f"Question: {transcript}"
        budget = self.max_prompt_chars - len(question) - len("Context:\n")
        context = []
        for passage in passages:
            line = f"- {passage}\n"
            if len(line) > budget:
                break
            context.append(line)
            budget -= len(line)
        return "Context:\n" + "".join(context) + question

    async def _speak(self, clock: TurnClock, turn: _Turn, phrase: str) -> bool:
        """Stream ``phrase`` spoken; False when the caller cancelled the turn meanwhile."""
        if not phrase.strip():
            return True
        clock.mark("tts_request")
        async with aclosing(self._stream(clock, "tts", {"TEXT": _text(phrase.strip())}, ["AUDIO"])) as chunks:
            async for chunk in chunks:
                if turn.cancelled():
                    return False
                turn.send(AUDIO=chunk["AUDIO"].astype(np.float32))
                clock.mark("first_audio")
        clock.stage = "pipeline"
        return True

    async def _call(self, clock: TurnClock, role: str, inputs: dict, outputs: list[str]) -> dict:
        """One request to the ``role`` stage: BLS on this server, or gRPC to the pool that serves it."""
        clock.stage = role
        if role in self.endpoints:
            result = await self.remote.call(self.endpoints[role], self.models[role], inputs, outputs)
        else:
            result = await bls.async_call(self.models[role], inputs, outputs)
        clock.stage = "pipeline"
        return result

    def _stream(self, clock: TurnClock, role: str, inputs: dict, outputs: list[str]):
        """The responses of the decoupled ``role`` stage over gRPC, from this server or from its pool's server
        (``clock`` names the stage until the caller is done with the stream; closing it early cancels the
        request)."""
        clock.stage = role
        return self.remote.stream(self.endpoints.get(role, self.own_endpoint), self.models[role], inputs, outputs)


class _Turn:
    """One turn's way back to its caller: responses (of the outputs it asked for), and whether the caller has
    cancelled (counted once)."""

    def __init__(self, sender, wanted: frozenset[str], metrics: TurnMetrics) -> None:
        self._sender = sender
        self._wanted = wanted
        self._metrics = metrics
        self._cancelled = False

    def cancelled(self) -> bool:
        if not self._cancelled and getattr(self._sender, "is_cancelled", lambda: False)():
            self._cancelled = True
            self._metrics.cancelled()
        return self._cancelled

    def send(self, **outputs: np.ndarray) -> None:
        triton.send_outputs(self._sender, self._wanted, **outputs)
