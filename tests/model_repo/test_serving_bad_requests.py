"""Bad requests get a clear error naming the input, the value and the fix -- and the server stays healthy.

Wrong dtypes, shapes and missing inputs are refused by Triton itself from the config; empty audio,
wrong sample rates, oversized inputs and out-of-range values by the models. After every bad request
the same model answers a good one, and a bad request batched together with good ones fails alone.
"""

from __future__ import annotations

import queue

import numpy as np
import pytest

pytestmark = pytest.mark.triton

RATE = np.array([[16_000]], dtype=np.int32)
RATE_1 = np.array([16_000], dtype=np.int32)  # the pipeline does not batch: no batch dimension
AUDIO = (0.1 * np.sin(np.arange(16_000) / 8)).astype(np.float32)[None, :]  # 1 s tone, batch of one
UNIT = np.full((1, 384), 1 / np.sqrt(384), dtype=np.float32)


def _text(*items: str) -> np.ndarray:
    return np.array([s.encode() for s in items], dtype=np.object_)


GOOD = {
    "vad": {"AUDIO": AUDIO, "SAMPLE_RATE": RATE},
    "anc": {"AUDIO": AUDIO, "SAMPLE_RATE": RATE},
    "asr": {"AUDIO": AUDIO, "SAMPLE_RATE": RATE},
    "embed": {"TEXT": _text("hello")[:, None]},
    "retriever": {"EMBEDDING": UNIT},
}
GOOD_STREAM = {
    "llm_chat": {"TEXT_INPUT": _text("hello"), "MAX_TOKENS": np.array([3], dtype=np.int32)},
    "tts": {"TEXT": _text("Hello.")},
    "voice_pipeline": {"AUDIO": np.zeros(8_000, dtype=np.float32), "SAMPLE_RATE": RATE_1},
}

BAD = [
    pytest.param("vad", {"AUDIO": AUDIO.astype(np.int16), "SAMPLE_RATE": RATE},
                 r"input 'AUDIO' data-type is 'INT16', but model 'vad' expects 'FP32'", id="wrong-dtype"),
    pytest.param("asr", {"AUDIO": AUDIO, "SAMPLE_RATE": np.array([[16_000, 16_000]], dtype=np.int32)},
                 r"unexpected shape for input 'SAMPLE_RATE'", id="wrong-shape"),
    pytest.param("vad", {"AUDIO": AUDIO}, r"missing required input\(s\) \['SAMPLE_RATE'\]", id="missing-input"),
    pytest.param("anc", {"AUDIO": np.zeros((1, 0), dtype=np.float32), "SAMPLE_RATE": RATE},
                 r"AUDIO is empty \(0 samples\)", id="empty-audio"),
    pytest.param("vad", {"AUDIO": AUDIO[:, :100], "SAMPLE_RATE": RATE},
                 r"AUDIO has 100 samples .* needs at least 512", id="too-short-audio"),
    pytest.param("vad", {"AUDIO": AUDIO, "SAMPLE_RATE": np.array([[8_000]], dtype=np.int32)},
                 r"SAMPLE_RATE is 8000 Hz, but this model takes 16000 Hz.*resample", id="wrong-sample-rate"),
    pytest.param("asr", {"AUDIO": np.zeros((1, 31 * 16_000), dtype=np.float32), "SAMPLE_RATE": RATE},
                 r"AUDIO has 496000 samples \(31.0 s\); this model accepts at most 30 s", id="oversized-audio"),
    pytest.param("anc", {"AUDIO": AUDIO * 32768, "SAMPLE_RATE": RATE},
                 r"AUDIO peaks at .* float PCM lies in \[-1, 1\].*divide by 32768", id="int16-scaled-audio"),
    pytest.param("embed", {"TEXT": _text("word " * 400)[:, None]},
                 r"TEXT item 0 is \d+ tokens long; this model embeds at most 256 tokens", id="oversized-text"),
    pytest.param("retriever", {"EMBEDDING": UNIT, "TOP_K": np.array([[99]], dtype=np.int32)},
                 r"TOP_K is 99; use a value in \[1, 16\]", id="top-k-out-of-range"),
    pytest.param("retriever", {"EMBEDDING": np.zeros((1, 384), dtype=np.float32)},
                 r"EMBEDDING must be a finite, non-zero vector", id="zero-embedding"),
]  # fmt: skip

BAD_STREAM = [
    pytest.param("llm_chat", {"TEXT_INPUT": _text("hi"), "MAX_TOKENS": np.array([0], dtype=np.int32)},
                 r"MAX_TOKENS is 0; use a value in \[1, 512\]", id="llm-max-tokens"),
    pytest.param("llm_chat", {"TEXT_INPUT": _text("word " * 2_100)},
                 r"TEXT_INPUT is \d+ tokens with the chat template; .*\(2048-token context\); shorten the prompt",
                 id="llm-oversized-prompt"),
    pytest.param("tts", {"TEXT": _text("   ")}, r"TEXT is empty", id="tts-empty-text"),
    pytest.param("tts", {"TEXT": _text("a" * 2_001)}, r"TEXT is 2001 characters.*at most 2000", id="tts-oversized"),
    pytest.param("voice_pipeline", {"AUDIO": AUDIO[0], "SAMPLE_RATE": np.array([44_100], dtype=np.int32)},
                 r"SAMPLE_RATE is 44100 Hz", id="pipeline-wrong-sample-rate"),
    pytest.param("voice_pipeline", {"AUDIO": AUDIO[0, :1_600], "SAMPLE_RATE": RATE_1},
                 r"AUDIO has 1600 samples .* needs at least 4000", id="pipeline-too-short"),
    pytest.param("voice_pipeline", {"AUDIO": AUDIO[0].astype(np.float64), "SAMPLE_RATE": RATE_1},
                 r"input 'AUDIO' data-type is 'FP64', but model 'voice_pipeline' expects 'FP32'",
                 id="pipeline-wrong-dtype"),
]  # fmt: skip


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize(("model", "values", "message"), BAD)
def test_bad_request_gets_a_clear_error_and_the_next_good_one_succeeds(serving, model, values, message, protocol):
    infer = serving.infer_http if protocol == "http" else serving.infer_grpc
    with pytest.raises(Exception, match=message):
        infer(model, values)
    result = infer(model, GOOD[model])
    assert result.get_response() is not None
    assert serving.http.is_server_live() and serving.http.is_server_ready()


@pytest.mark.parametrize(("model", "values", "message"), BAD_STREAM)
def test_bad_streaming_request_gets_a_clear_error_and_the_next_good_one_succeeds(serving, model, values, message):
    with pytest.raises(serving.StreamError, match=message):
        serving.stream(model, values)
    responses = serving.stream(model, GOOD_STREAM[model])
    assert responses[-1].final
    assert serving.grpc.is_server_live() and serving.grpc.is_server_ready()


def test_a_bad_request_batched_with_good_ones_fails_alone(serving):
    """Sent together, the requests share dynamic batches; only the bad one gets an error."""
    done: queue.Queue = queue.Queue()
    wrong_rate = {"AUDIO": AUDIO, "SAMPLE_RATE": np.array([[22_050]], dtype=np.int32)}
    requests = [GOOD["vad"]] * 4 + [wrong_rate] + [GOOD["vad"]] * 4
    for i, values in enumerate(requests):
        serving.grpc.async_infer(
            "vad", serving.grpc_inputs(values), callback=lambda result, error, i=i: done.put((i, result, error))
        )
    outcomes = dict((i, (result, error)) for i, result, error in (done.get(timeout=60) for _ in requests))
    assert "SAMPLE_RATE is 22050 Hz" in str(outcomes[4][1])
    for i, (result, error) in outcomes.items():
        if i != 4:
            assert error is None, error
            assert result.as_numpy("SPEECH_PROBS").shape == (1, 32)
