"""A meaningful request for any model of the repository, built from its Triton config, and checks on its answer.

Inputs are chosen by tensor name, the same names the catalog gives every model: ``AUDIO`` gets real
speech (espeak-ng, 16 kHz), ``SAMPLE_RATE`` 16000, ``TEXT``/``TEXT_INPUT`` a sentence, ``EMBEDDING`` a
unit vector, ``MAX_TOKENS`` a small cap so LLM calls stay short. Any other tensor (e.g. an engine's
raw bindings on a deployed GPU stack) gets deterministic values of its type and shape, so every
model can be called; optional inputs that are not known are left out.

The checks (:func:`check_outputs`) say what a *correct* answer looks like per role: a unit-length
embedding, probabilities in [0, 1] and speech found in speech, audio of the same length out of the
noise suppressor, passages with descending scores, a non-empty audio stream from TTS, ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
SENTENCE = "What are the opening hours of the support line on weekends?"
LLM_MAX_TOKENS = 8
GENERIC_DIM = 16
# The noise suppressor's latency objective is per second of audio: it is called with one-second chunks.
AUDIO_SECONDS = {"anc": 1.0}

_NUMPY = {
    "TYPE_BOOL": np.bool_,
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32,
    "TYPE_UINT64": np.uint64,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}


def numpy_dtype(config_dtype: str):
    """The numpy type of a Triton config data type (``TYPE_FP32`` or ``FP32``); object for strings."""
    name = config_dtype if config_dtype.startswith("TYPE_") else f"TYPE_{config_dtype}"
    if name == "TYPE_BYTES":
        name = "TYPE_STRING"
    if name not in _NUMPY:
        raise ValueError(f"data type {config_dtype!r} is not one this tool handles")
    return _NUMPY[name]


def synthetic_voice(seconds: float = 1.0) -> np.ndarray:
    """A deterministic voiced signal (110 Hz with harmonics, a syllable envelope), float32, for hosts without
    espeak-ng (the serving image). Not speech: a VAD need not find any in it."""
    t = np.arange(int(seconds * SAMPLE_RATE), dtype=np.float64) / SAMPLE_RATE
    voice = sum(np.sin(2 * np.pi * 110 * k * t) / k for k in range(1, 8))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3 * t))
    return (0.3 * envelope * voice / np.max(np.abs(voice))).astype(np.float32)


@dataclass(frozen=True)
class ModelCall:
    """How to call one model: its inputs (batch of one where it batches), outputs, whether it streams."""

    model: str
    role: str
    inputs: dict[str, np.ndarray]
    outputs: tuple[str, ...]
    streaming: bool
    batched: bool
    spoken: bool = True  # the AUDIO input is real speech (a VAD must find some)


def role_of(config: Mapping[str, Any]) -> str:
    params = config.get("parameters") or {}
    role = (params.get("role") or {}).get("string_value")
    return role or "unknown"


def is_internal(config: Mapping[str, Any]) -> bool:
    """An engine a public model calls through BLS (``engine_of`` parameter): smoke-tested through its parent."""
    return "engine_of" in (config.get("parameters") or {})


def _dims(tensor: Mapping[str, Any]) -> list[int]:
    return [int(d) for d in tensor.get("dims", [])]


def _generic(tensor: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    dtype = tensor.get("data_type", "TYPE_FP32")
    if dtype not in _NUMPY:
        raise ValueError(f"input {tensor.get('name')!r} has data type {dtype!r}, which this tool cannot generate")
    shape = [GENERIC_DIM if d < 0 else d for d in _dims(tensor)]
    kind = _NUMPY[dtype]
    if kind is np.object_:
        return np.full(shape, SENTENCE.encode(), dtype=np.object_)
    if kind is np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    if np.issubdtype(kind, np.integer):
        return rng.integers(1, 8, shape).astype(kind)
    return rng.standard_normal(shape).astype(kind)


def build_call(
    config: Mapping[str, Any], speech: np.ndarray, *, text: str = SENTENCE, seed: int = 0, spoken: bool = True
) -> ModelCall:
    """The request for the model whose Triton config (JSON form, as the server returns it) is ``config``."""
    rng = np.random.default_rng(seed)
    name = config["name"]
    batched = int(config.get("max_batch_size", 0)) > 0
    inputs: dict[str, np.ndarray] = {}
    role = role_of(config)
    for tensor in config.get("input", []):
        tname = tensor["name"]
        if tname == "AUDIO":
            seconds = AUDIO_SECONDS.get(role)
            value = (speech if seconds is None else speech[: int(seconds * SAMPLE_RATE)]).astype(np.float32)
        elif tname == "SAMPLE_RATE":
            value = np.array([SAMPLE_RATE], dtype=np.int32)
        elif tname in ("TEXT", "TEXT_INPUT"):
            value = np.array([text.encode("utf-8")], dtype=np.object_)
        elif tname == "MAX_TOKENS":
            value = np.array([LLM_MAX_TOKENS], dtype=np.int32)
        elif tname == "EMBEDDING":
            dims = _dims(tensor)
            vector = rng.standard_normal(dims[-1] if dims and dims[-1] > 0 else 384).astype(np.float32)
            value = vector / np.linalg.norm(vector)
        elif tensor.get("optional"):
            continue
        else:
            value = _generic(tensor, rng)
        inputs[tname] = value[None, ...] if batched else value
    outputs = tuple(t["name"] for t in config.get("output", []))
    streaming = bool((config.get("model_transaction_policy") or {}).get("decoupled"))
    return ModelCall(name, role, inputs, outputs, streaming, batched, spoken)


# --- what a correct answer looks like ---------------------------------------------------------------


def _first(outputs: Mapping[str, np.ndarray], name: str, batched: bool) -> np.ndarray:
    if name not in outputs:
        raise AssertionError(f"output {name} missing")
    value = outputs[name]
    return value[0] if batched else value


def _concat(responses: Sequence[Mapping[str, np.ndarray]], name: str) -> list[np.ndarray]:
    return [r[name] for r in responses if name in r]


def check_outputs(call: ModelCall, responses: Sequence[Mapping[str, np.ndarray]]) -> str:
    """A one-line summary of a correct answer; raises AssertionError saying what is wrong otherwise.

    ``responses`` holds one mapping for a request/response model, every streamed response otherwise.
    """
    if not responses:
        raise AssertionError("no response")
    out = responses[0]
    b = call.batched
    role = call.role
    if role == "embed":
        vector = _first(out, "EMBEDDING", b).astype(np.float64)
        norm = float(np.linalg.norm(vector))
        if not np.all(np.isfinite(vector)) or abs(norm - 1.0) > 1e-3:
            raise AssertionError(f"EMBEDDING has norm {norm:.4f}; a sentence embedding is unit length")
        return f"{vector.shape[0]}-d unit vector"
    if role == "vad":
        probs = _first(out, "SPEECH_PROBS", b)
        segments = _first(out, "SPEECH_SEGMENTS", b)
        if probs.size == 0 or probs.min() < 0 or probs.max() > 1:
            raise AssertionError(f"SPEECH_PROBS outside [0, 1] or empty ({probs.size} values)")
        segments = segments[segments[:, 0] >= 0] if segments.size else segments
        if "AUDIO" in call.inputs and call.spoken and len(segments) == 0:
            raise AssertionError("no speech segment found in spoken audio")
        return f"{probs.size} frames, {len(segments)} speech segment(s)"
    if role == "anc":
        audio = _first(out, "AUDIO", b)
        sent = call.inputs["AUDIO"][0] if b else call.inputs["AUDIO"]
        if audio.shape != sent.shape or not np.all(np.isfinite(audio)):
            raise AssertionError(f"AUDIO shape {audio.shape} differs from the input's {sent.shape} or is not finite")
        return f"{audio.shape[-1]} samples denoised"
    if role == "asr":
        text = _first(out, "TRANSCRIPT", b).reshape(-1)[0]
        text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
        return f"transcript {text[:40]!r}"
    if role == "retriever":
        passages = _first(out, "PASSAGES", b).reshape(-1)
        scores = _first(out, "SCORES", b).reshape(-1).astype(np.float64)
        if len(passages) == 0 or len(passages) != len(scores):
            raise AssertionError(f"{len(passages)} passages with {len(scores)} scores")
        if np.any(np.diff(scores) > 1e-6):
            raise AssertionError(f"SCORES {scores.tolist()} are not best-first")
        return f"{len(passages)} passages, best score {scores[0]:.3f}"
    if role == "llm":
        pieces = _concat(responses, "TEXT_OUTPUT")
        if not pieces:
            raise AssertionError("no TEXT_OUTPUT streamed")
        return f"{len(pieces)} text pieces streamed"
    if role == "tts":
        chunks = _concat(responses, "AUDIO")
        samples = sum(int(c.size) for c in chunks)
        if samples == 0 or not all(np.all(np.isfinite(c)) for c in chunks):
            raise AssertionError(f"{len(chunks)} AUDIO chunks with {samples} samples")
        return f"{len(chunks)} audio chunks, {samples / SAMPLE_RATE:.2f} s"
    if role == "pipeline":
        transcripts = _concat(responses, "TRANSCRIPT")
        if not transcripts:
            raise AssertionError("no TRANSCRIPT response")
        texts, chunks = _concat(responses, "TEXT_OUTPUT"), _concat(responses, "AUDIO")
        if not texts or not chunks:
            raise AssertionError(f"{len(texts)} text pieces and {len(chunks)} audio chunks; expected both")
        return f"transcript, {len(texts)} text pieces, {len(chunks)} audio chunks"
    present = [name for name in call.outputs if any(name in r for r in responses)]
    if not present:
        raise AssertionError(f"none of the outputs {list(call.outputs)} came back")
    return f"outputs {present}"
