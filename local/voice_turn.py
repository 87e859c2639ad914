"""One voice turn, two ways: through the ``voice_pipeline`` BLS model, and by calling each model directly.

* :func:`pipeline_turn` streams one utterance through the server-side pipeline and records when the
  transcript, the first LLM text and the first answer audio arrived, and when the turn ended.
* :func:`direct_turn` does the same turn from the client, one model call per stage (ANC -> VAD -> ASR ->
  embed -> retriever -> LLM -> TTS per phrase), with each stage's result and latency. It follows the
  pipeline model's own steps (``model_repo/python_models/voice_pipeline/model.py``): the same speech
  span, prompt layout, phrase splitting and parameters read from the pipeline's config, so both paths
  do the same work and their difference is the orchestration overhead.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from local import triton_calls

SAMPLE_RATE = 16_000
SENTENCE_END = ".?!"
ROLES = ("anc", "vad", "asr", "embed", "retriever", "llm", "tts")
PIPELINE_DEFAULTS = {"top_k": "3", "phrase_chars": "48", "max_prompt_chars": "768", "asr_pad_s": "0.5",
                     "asr_audio": "denoised"}  # fmt: skip


@dataclass
class Stage:
    name: str
    model: str
    ms: float
    result: str


@dataclass
class TurnResult:
    """What a turn produced and when (milliseconds since the audio was sent)."""

    transcript: str = ""
    passages: list[str] = field(default_factory=list)
    answer: str = ""
    audio_seconds: float = 0.0
    segments: int = 0
    transcript_ms: float | None = None
    first_text_ms: float | None = None
    first_audio_ms: float | None = None
    total_ms: float = 0.0
    stages: list[Stage] = field(default_factory=list)


def pipeline_settings(config: Mapping[str, Any]) -> dict[str, str]:
    """The pipeline's ``*_model`` and tuning parameters from its Triton config (JSON form)."""
    params = {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}
    missing = [f"{r}_model" for r in ROLES if f"{r}_model" not in params]
    if missing:
        raise ValueError(f"pipeline config {config.get('name')!r} lacks parameters {missing}")
    return {**PIPELINE_DEFAULTS, **params}


def _text(value: str) -> np.ndarray:
    return np.array([value.encode("utf-8")], dtype=np.object_)


def _decode(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def pipeline_inputs(audio: np.ndarray, max_tokens: int) -> dict[str, np.ndarray]:
    """The voice pipeline's request: 16 kHz mono float32 speech and the answer's token budget."""
    return {
        "AUDIO": audio.astype(np.float32),
        "SAMPLE_RATE": np.array([SAMPLE_RATE], dtype=np.int32),
        "MAX_TOKENS": np.array([max_tokens], dtype=np.int32),
    }


def pipeline_turn(
    client, model: str, audio: np.ndarray, max_tokens: int, timeout_s: float = 300.0, reply_audio: list | None = None
) -> TurnResult:
    """One turn through the pipeline; ``reply_audio``, when given, receives the reply's audio chunks in order."""
    inputs = pipeline_inputs(audio, max_tokens)
    outputs = ["TRANSCRIPT", "SPEECH_SEGMENTS", "PASSAGES", "TEXT_OUTPUT", "AUDIO"]
    responses, total = triton_calls.stream(client, model, inputs, outputs, timeout_s)
    turn = TurnResult(total_ms=total * 1000)
    for response in responses:
        out, at = response.outputs, response.at_s * 1000
        if "TRANSCRIPT" in out and turn.transcript_ms is None:
            turn.transcript_ms = at
            turn.transcript = _decode(out["TRANSCRIPT"].reshape(-1)[0])
            turn.passages = [_decode(p) for p in out.get("PASSAGES", np.zeros(0, dtype=object)).reshape(-1)]
            turn.segments = int(out["SPEECH_SEGMENTS"].shape[0]) if "SPEECH_SEGMENTS" in out else 0
        if "TEXT_OUTPUT" in out:
            turn.first_text_ms = turn.first_text_ms if turn.first_text_ms is not None else at
            turn.answer += _decode(out["TEXT_OUTPUT"].reshape(-1)[0])
        if "AUDIO" in out:
            turn.first_audio_ms = turn.first_audio_ms if turn.first_audio_ms is not None else at
            turn.audio_seconds += out["AUDIO"].size / SAMPLE_RATE
            if reply_audio is not None:
                reply_audio.append(out["AUDIO"].reshape(-1))
    return turn


def pipeline_prompt(transcript: str, passages: list[str], max_prompt_chars: int = 768) -> str:
    """The pipeline model's prompt layout: grounding passages within the budget, then the user's words."""
    question = f"Question: {transcript}"
    budget = max_prompt_chars - len(question) - len("Context:\n")
    context = []
    for passage in passages:
        line = f"- {passage}\n"
        if len(line) > budget:
            break
        context.append(line)
        budget -= len(line)
    return "Context:\n" + "".join(context) + question


def asr_transcript(client, model: str, audio: np.ndarray) -> str:
    """``audio`` (16 kHz float32) transcribed by the ASR model ``model`` in one call."""
    inputs = {"AUDIO": audio.astype(np.float32)[None, :], "SAMPLE_RATE": np.array([[SAMPLE_RATE]], dtype=np.int32)}
    out, _ = triton_calls.infer(client, model, inputs, ["TRANSCRIPT"])
    return _decode(out["TRANSCRIPT"].reshape(-1)[0])


def direct_transcript(client, settings: Mapping[str, str], audio: np.ndarray, turn: TurnResult) -> bool:
    """The turn's first half from the client (ANC -> VAD -> ASR -> embed -> retriever) into ``turn``, its
    ``transcript_ms`` measured from this call; False when VAD heard no speech."""
    models = {role: settings[f"{role}_model"] for role in ROLES}
    rate = np.array([[SAMPLE_RATE]], dtype=np.int32)
    started = time.monotonic()

    def stage(name: str, call_ms: float, result: str) -> None:
        turn.stages.append(Stage(name, models[name], call_ms * 1000, result))

    out, s = triton_calls.infer(client, models["anc"], {"AUDIO": audio[None, :], "SAMPLE_RATE": rate}, ["AUDIO"])
    clean = out["AUDIO"][0]
    stage("anc", s, f"{clean.size} samples denoised")
    out, s = triton_calls.infer(
        client, models["vad"], {"AUDIO": clean[None, :], "SAMPLE_RATE": rate}, ["SPEECH_SEGMENTS"]
    )
    segments = out["SPEECH_SEGMENTS"][0]
    segments = segments[segments[:, 0] >= 0]
    turn.segments = len(segments)
    stage("vad", s, f"{len(segments)} speech segment(s)")
    if len(segments) == 0:
        return False
    # As the pipeline does: the speech span widened by asr_pad_s, from the audio asr_audio names.
    pad = int(float(settings["asr_pad_s"]) * SAMPLE_RATE)
    start, end = max(0, int(segments[0, 0] * SAMPLE_RATE) - pad), int(segments[-1, 1] * SAMPLE_RATE) + pad
    speech = (clean if settings["asr_audio"] == "denoised" else audio)[start:end]
    out, s = triton_calls.infer(client, models["asr"], {"AUDIO": speech[None, :], "SAMPLE_RATE": rate}, ["TRANSCRIPT"])
    turn.transcript = _decode(out["TRANSCRIPT"].reshape(-1)[0])
    stage("asr", s, repr(turn.transcript[:60]))
    out, s = triton_calls.infer(client, models["embed"], {"TEXT": _text(turn.transcript)[None, :]}, ["EMBEDDING"])
    embedding = out["EMBEDDING"]
    stage("embed", s, f"{embedding.shape[-1]}-d embedding")
    top_k = np.array([[int(settings["top_k"])]], dtype=np.int32)
    out, s = triton_calls.infer(
        client, models["retriever"], {"EMBEDDING": embedding, "TOP_K": top_k}, ["PASSAGES", "SCORES"]
    )
    turn.passages = [_decode(p) for p in out["PASSAGES"][0]]
    stage("retriever", s, f"{len(turn.passages)} passages")
    turn.transcript_ms = (time.monotonic() - started) * 1000
    return True


def direct_turn(
    client, settings: Mapping[str, str], audio: np.ndarray, max_tokens: int, timeout_s: float = 300.0
) -> TurnResult:
    """The pipeline's turn driven from the client, one call per stage; ``settings`` from :func:`pipeline_settings`."""
    turn = TurnResult()
    started = time.monotonic()
    passages_found = direct_transcript(client, settings, audio, turn)
    if not passages_found:
        turn.total_ms = (time.monotonic() - started) * 1000
        return turn
    models = {role: settings[f"{role}_model"] for role in ROLES}

    def stage(name: str, call_ms: float, result: str) -> None:
        turn.stages.append(Stage(name, models[name], call_ms * 1000, result))

    prompt = pipeline_prompt(turn.transcript, turn.passages, int(settings["max_prompt_chars"]))
    llm_inputs = {"TEXT_INPUT": _text(prompt), "MAX_TOKENS": np.array([max_tokens], dtype=np.int32)}
    llm_started = time.monotonic()
    pieces, _ = triton_calls.stream(client, models["llm"], llm_inputs, ["TEXT_OUTPUT"], timeout_s)
    llm_s = time.monotonic() - llm_started
    phrases, phrase = [], ""
    for response in pieces:
        if "TEXT_OUTPUT" not in response.outputs:
            continue
        if turn.first_text_ms is None:
            turn.first_text_ms = (llm_started - started + response.at_s) * 1000
        text = _decode(response.outputs["TEXT_OUTPUT"].reshape(-1)[0])
        turn.answer += text
        phrase += text
        if phrase.rstrip()[-1:] in SENTENCE_END or (
            len(phrase) >= int(settings["phrase_chars"]) and phrase.endswith(" ")
        ):
            phrases.append(phrase)
            phrase = ""
    phrases.append(phrase)
    stage("llm", llm_s, f"{len(pieces) - 1} pieces, {len(turn.answer)} chars")
    tts_s = 0.0
    for text in (p.strip() for p in phrases):
        if not text:
            continue
        tts_started = time.monotonic()
        chunks, _ = triton_calls.stream(client, models["tts"], {"TEXT": _text(text)}, ["AUDIO"], timeout_s)
        for chunk in chunks:
            if "AUDIO" in chunk.outputs:
                if turn.first_audio_ms is None:
                    turn.first_audio_ms = (tts_started - started + chunk.at_s) * 1000
                turn.audio_seconds += chunk.outputs["AUDIO"].size / SAMPLE_RATE
        tts_s += time.monotonic() - tts_started
    stage("tts", tts_s, f"{turn.audio_seconds:.2f} s of audio")
    turn.total_ms = (time.monotonic() - started) * 1000
    return turn
