"""The voice pipeline end to end on the real server: a spoken WAV in, a streamed answer out (gRPC streaming).

The utterance is spoken by espeak-ng and mixed with pink noise by sox (``speech_sample``). The CPU ASR (Whisper
tiny.en) and LLM (SmolLM2-135M-Instruct) are small trained models; this test checks what comes back (the question's
words, real knowledge-base passages, streamed text, real audio), the streaming behaviour (audio of the first phrase
arrives before the LLM has finished) and the timings; test_local_models_speak_sense.py checks what it means.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from local.triton_calls import grpc_client, stream
from local.voice_turn import pipeline_inputs
from model_repo import catalog
from tests.gpu_standins import checks
from tests.model_repo.conftest import check_streamed_while_generating, voice_turn

pytestmark = pytest.mark.triton

SAMPLE_RATE = 16_000
MAX_TOKENS = 120  # > 2 x the pipeline's phrase length: the first phrase is spoken before the last token
CORPUS = Path(__file__).resolve().parents[2] / "model_repo" / "artifacts" / "corpus" / "knowledge_base.jsonl"


@pytest.fixture(scope="module")
def turn(serving, speech_sample):
    return voice_turn(serving, speech_sample, MAX_TOKENS)


def test_first_response_is_transcript_segments_and_passages(turn, speech_sample):
    first = turn[0].outputs
    assert set(first) == {"TRANSCRIPT", "SPEECH_SEGMENTS", "PASSAGES"}
    transcript = first["TRANSCRIPT"][0].decode()
    # Whisper tiny.en on espeak-ng's voice in noise: the words of the question, not always every word.
    assert {"hear", "person", "calls"} & set(re.findall(r"[a-z]+", transcript.lower())), transcript
    segments = first["SPEECH_SEGMENTS"]
    assert abs(segments[0, 0] - speech_sample.speech_start_s) <= 0.1
    assert segments[-1, 1] - speech_sample.speech_end_s <= 0.25
    corpus = {json.loads(line)["text"] for line in CORPUS.read_text().splitlines() if line.strip()}
    passages = [p.decode() for p in first["PASSAGES"]]
    top_k = int(catalog.CATALOG["voice_pipeline"].target("cpu").parameters["top_k"])
    assert len(passages) == top_k and set(passages) <= corpus


def test_llm_tokens_and_tts_audio_stream_interleaved(turn, record_property):
    kinds = [next(iter(r.outputs)) if r.outputs else "final" for r in turn[1:]]
    text_at = [i for i, k in enumerate(kinds) if k == "TEXT_OUTPUT"]
    audio_at = [i for i, k in enumerate(kinds) if k == "AUDIO"]
    assert kinds[-1] == "final" and turn[-1].final
    assert set(kinds) == {"TEXT_OUTPUT", "AUDIO", "final"}
    assert all(len(r.outputs) == 1 for r in turn[1:-1]), "each streamed response carries one output"
    assert len(text_at) > 1, "the answer streams in pieces, not as one buffered text"
    pieces = [turn[1 + i].outputs["TEXT_OUTPUT"][0].decode() for i in text_at]
    check_streamed_while_generating(kinds, pieces)
    answer = "".join(pieces)
    assert len(re.findall(r"[A-Za-z]+", answer)) >= 3, answer  # words of a trained model, not bytes

    chunks = [turn[1 + i].outputs["AUDIO"] for i in audio_at]
    audio = np.concatenate(chunks)
    assert all(c.dtype == np.float32 and 0 < len(c) <= SAMPLE_RATE // 5 for c in chunks), "chunks of <= 200 ms"
    assert len(audio) / SAMPLE_RATE > 1.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.01, "the streamed audio is speech, not silence"
    assert np.abs(audio).max() <= 1.0

    first_audio_s = turn[1 + audio_at[0]].arrived_s
    record_property("pipeline_first_response_s", round(turn[0].arrived_s, 3))
    record_property("pipeline_first_audio_s", round(first_audio_s, 3))
    record_property("pipeline_total_s", round(turn[-1].arrived_s, 3))
    print(
        f"pipeline: transcript+passages after {turn[0].arrived_s:.2f} s, first audio after {first_audio_s:.2f} s, "
        f"done after {turn[-1].arrived_s:.2f} s ({len(text_at)} tokens, {len(audio) / SAMPLE_RATE:.1f} s of audio)"
    )


def test_noise_without_speech_ends_the_turn_with_an_empty_transcript(serving, speech_sample):
    noise = speech_sample.noisy[speech_sample.noise_only()]
    values = {"AUDIO": noise, "SAMPLE_RATE": np.array([SAMPLE_RATE], dtype=np.int32)}
    responses = serving.stream("voice_pipeline", values)
    assert len(responses) == 2 and responses[-1].final
    first = responses[0].outputs
    assert first["TRANSCRIPT"][0] == b"" and first["SPEECH_SEGMENTS"].shape == (0, 2) and first["PASSAGES"].size == 0


def test_a_client_that_asks_for_audio_only_gets_audio_only(serving, speech_sample):
    """A caller that only plays the reply (a telephony bridge) names AUDIO: every response but the final one carries
    audio, none comes empty. The pipeline sends only what was asked for; Triton 2.51's Python backend would otherwise
    drop the rest inside ``send`` without the GIL (see ``_common/triton.send_outputs``)."""
    client = grpc_client(serving.endpoints.grpc)
    try:
        responses, _ = stream(client, "voice_pipeline", pipeline_inputs(speech_sample.noisy, 40), ["AUDIO"])
    finally:
        client.close()
    assert responses[-1].final and not responses[-1].outputs
    assert len(responses) > 2 and all(set(r.outputs) == {"AUDIO"} for r in responses[:-1]), [
        sorted(r.outputs) for r in responses
    ]


def _pipeline_counters(serving, requests: float = 0) -> dict[str, float]:
    names = ("nv_inference_request_success", "nv_inference_request_failure", "nv_inference_queue_duration_us")
    return checks.counters(serving, "voice_pipeline", names, requests=requests)


def test_a_cancelled_turn_is_completed_with_the_final_flag(triton, speech_sample):
    """The caller hangs up after the transcript: the turn stops early, still ends with the final flag and completes
    in Triton as a request served (not a failure, not one left in flight)."""
    checks.check_cancelled_turn_ends(triton, speech_sample.noisy)


def test_one_instance_serves_concurrent_turns_without_queueing_them(serving, speech_sample):
    """voice_pipeline executes as a coroutine: a turn waiting on its stages does not hold the next turn in Triton's
    queue (a synchronous execute made the second of two turns wait for the whole first turn)."""
    turns = 3
    before = _pipeline_counters(serving)
    with ThreadPoolExecutor(turns) as pool:
        results = list(pool.map(lambda _: voice_turn(serving, speech_sample, 40), range(turns)))
    after = _pipeline_counters(serving, before["nv_inference_request_success"] + turns)
    assert all(r[-1].final for r in results)
    requests = after["nv_inference_request_success"] - before["nv_inference_request_success"]
    queued_ms = (after["nv_inference_queue_duration_us"] - before["nv_inference_queue_duration_us"]) / 1000
    assert requests == turns
    assert queued_ms / turns < 50, f"turns waited {queued_ms / turns:.0f} ms on average in voice_pipeline's queue"
