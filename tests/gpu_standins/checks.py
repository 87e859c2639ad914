"""The gpu serving path's checks, run against two live servers (the speech pool's, the LLM pool's).

Shared by the CPU run in CI (``tests/model_repo/test_serving_gpu_standins.py``: small stand-ins on CPU
instances) and the GPU run (``tests/gpu_standins/test_on_gpu.py``: full-size stand-ins on the GPU). Imports stay
light (numpy, tritonclient, this repository's server launcher and clients) so they run on the GPU machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from local import triton_calls
from local.voice_turn import TurnResult, pipeline_inputs, pipeline_turn
from model_repo.local_server import TritonServer

SAMPLE_RATE = 16_000
LLM_PAIR = ("llm_chat", "llm_support")  # both Llama 8B variants, placed on one GPU
PIPELINE_LLM = "llm_chat"  # the LLM voice_pipeline calls (its llm_model parameter)
SPEECH_MODELS = ("anc", "vad", "asr", "asr_encoder", "asr_decoder_joint", "embed", "embed_encoder", "retriever",
                 "tts", "tts_fastpitch", "tts_hifigan", "voice_pipeline", "bls_probe")  # fmt: skip


@dataclass
class Pools:
    speech: TritonServer
    llm: TritonServer


@contextmanager
def pools(speech_repository: Path, llm_repository: Path, work_dir: Path) -> Iterator[Pools]:
    """The LLM pool's server, then the speech pool's, told where the LLM pool is as its Deployment tells it. With
    ``GPU_STANDINS_LOGS`` set (a directory), both servers' logs are copied there at the end: on a machine that is
    given back after the run, they are what is left to read."""
    llm = TritonServer(llm_repository, work_dir=work_dir / "llm", exit_timeout_s=1, startup_timeout_s=300,
                       env={"TRITON_GRPC_ENDPOINTS": ""})  # fmt: skip
    speech = None
    llm.start()
    try:
        speech = TritonServer(
            speech_repository, model_control_mode="explicit", load_models=SPEECH_MODELS,
            work_dir=work_dir / "speech", exit_timeout_s=1, startup_timeout_s=600,
            env={"TRITON_GRPC_ENDPOINTS": json.dumps({"llm": llm.endpoints.grpc})},
        )  # fmt: skip
        with speech:
            yield Pools(speech, llm)
    finally:
        llm.stop()
        if keep := os.environ.get("GPU_STANDINS_LOGS"):
            Path(keep).mkdir(parents=True, exist_ok=True)
            for name, server in (("llm", llm), ("speech", speech)):
                if server is not None and server.log_path.is_file():
                    shutil.copyfile(server.log_path, Path(keep) / f"{work_dir.name}-{name}.log")


def metric(server: TritonServer, name: str, model: str) -> float:
    """A Triton metric of ``model``, summed over its versions (Triton exports each from the model's load on, so a
    missing one is a wrong name or an unloaded model, not a zero)."""
    text = urllib.request.urlopen(server.endpoints.metrics_url, timeout=10).read().decode()
    pattern = re.compile(rf'^{name}\{{[^}}]*model="{re.escape(model)}"[^}}]*\}} (\S+)$', re.MULTILINE)
    values = [float(v) for v in pattern.findall(text)]
    if not values:
        raise AssertionError(f"metric {name} for model {model} not found at {server.endpoints.metrics_url}")
    return sum(values)


def counters(server: TritonServer, model: str, names: tuple[str, ...], *, requests: float = 0) -> dict[str, float]:
    """``model``'s metrics ``names`` once the first of them (the request count) reaches ``requests`` and two readings
    0.2 s apart agree, or after 10 s. Triton counts a request just after its response has left, so a reading taken
    right after the last response can still miss it (CI once saw a warm-up call counted after the reading meant to
    follow it)."""
    previous, deadline = None, time.monotonic() + 10
    current = {n: metric(server, n, model) for n in names}
    while (current[names[0]] < requests or current != previous) and time.monotonic() < deadline:
        time.sleep(0.2)
        previous, current = current, {n: metric(server, n, model) for n in names}
    return current


def check_voice_turn(server: TritonServer, speech: np.ndarray, max_tokens: int = 60) -> TurnResult:
    """One spoken turn: every stage's output has its shape, text and audio stream, the stream ends final."""
    client = triton_calls.grpc_client(server.endpoints.grpc)
    try:
        turn = pipeline_turn(client, "voice_pipeline", speech, max_tokens)
    finally:
        client.close()
    assert turn.segments >= 1, "VAD found the speech"
    assert turn.transcript.strip(), "ASR (encoder + TDT decoding over the stand-in engines) produced pieces"
    assert len(turn.passages) == 3, "retrieval returned top_k passages for the transcript's embedding"
    assert turn.answer, "the LLM pool's tokens streamed through the pipeline"
    assert turn.audio_seconds > 0.2, "FastPitch + HiFi-GAN audio streamed back"
    assert turn.first_audio_ms is not None and turn.first_audio_ms < turn.total_ms
    return turn


def check_stages(server: TritonServer, speech: np.ndarray) -> None:
    """Each public stage on its own, as a client calls it: shapes and dtypes of the interface."""
    client = triton_calls.grpc_client(server.endpoints.grpc)
    try:
        rate = np.array([[SAMPLE_RATE]], dtype=np.int32)
        asr, _ = triton_calls.infer(client, "asr", {"AUDIO": speech[None], "SAMPLE_RATE": rate}, ["TRANSCRIPT"])
        assert asr["TRANSCRIPT"].shape == (1, 1)
        text = np.array([[b"How do I reset my password?"], [b"Audio drops during calls"]], dtype=np.object_)
        vectors = triton_calls.infer(client, "embed", {"TEXT": text}, ["EMBEDDING"])[0]["EMBEDDING"]
        assert vectors.shape == (2, 384) and vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
        responses, _ = triton_calls.stream(
            client, "tts", {"TEXT": np.array([b"Hello there. Your call is being connected."], dtype=np.object_)},
            ["AUDIO", "SAMPLE_RATE"], 120.0,
        )  # fmt: skip
        chunks = [r.outputs["AUDIO"] for r in responses if "AUDIO" in r.outputs]
        assert chunks and all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
        assert {int(r.outputs["SAMPLE_RATE"].reshape(-1)[0]) for r in responses if "SAMPLE_RATE" in r.outputs} == {
            SAMPLE_RATE
        }
        # One sentence longer than FastPitch's profile (256 symbols): spoken in parts, not refused by the engine.
        long = " ".join(["please hold while we connect your call to the next available agent"] * 6)
        responses, _ = triton_calls.stream(client, "tts", {"TEXT": np.array([long.encode()], dtype=np.object_)},
                                           ["AUDIO"], 300.0)  # fmt: skip
        assert sum(r.outputs["AUDIO"].size for r in responses if "AUDIO" in r.outputs) > SAMPLE_RATE
    finally:
        client.close()


def check_cancelled_turn_ends(server: TritonServer, speech: np.ndarray, llm_repository: Path | None = None) -> None:
    """A turn whose caller hangs up after the transcript completes in Triton (as served, not failed); with the LLM
    pool's repository, its LLM request was aborted mid-answer too (the pipeline cancelled it over gRPC)."""

    def count(name: str) -> float:
        return metric(server, name, "voice_pipeline")

    def aborted() -> int:
        if llm_repository is None or not (llm_repository / PIPELINE_LLM / "1" / "standin_stats.json").is_file():
            return 0
        return llm_stats(llm_repository, PIPELINE_LLM).get("requests_aborted", 0)

    aborted_before = aborted()

    before = {n: count(n) for n in ("nv_inference_request_success", "nv_inference_request_failure")}
    client = triton_calls.grpc_client(server.endpoints.grpc)
    try:  # the transcript arrives (the turn is under way), then the caller hangs up
        triton_calls.stream(client, "voice_pipeline", pipeline_inputs(speech, 200), ["TRANSCRIPT"], 300.0, 1)
    finally:
        client.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        after = {n: count(n) for n in before}
        if after["nv_inference_request_success"] > before["nv_inference_request_success"]:
            break
        time.sleep(0.2)
    assert after["nv_inference_request_success"] - before["nv_inference_request_success"] == 1
    assert after["nv_inference_request_failure"] == before["nv_inference_request_failure"]
    if llm_repository is not None:
        while aborted() == aborted_before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert aborted() == aborted_before + 1, "the cancelled turn's LLM request was aborted before its last token"


def bls_memory(server: TritonServer) -> dict:
    """What ``bls_probe`` saw: whether the engine's outputs came back in CPU memory by default, the error numpy
    gave, and the shape ``_common.bls`` read."""
    client = triton_calls.grpc_client(server.endpoints.grpc)
    try:
        out, _ = triton_calls.infer(client, "bls_probe", {"RUN": np.array([1], dtype=np.int32)},
                                 ["DEFAULT_ON_CPU", "NUMPY_ERROR", "BLS_SHAPE"])  # fmt: skip
    finally:
        client.close()
    return {
        "default_on_cpu": bool(out["DEFAULT_ON_CPU"][0]),
        "numpy_error": out["NUMPY_ERROR"][0].decode(),
        "bls_shape": out["BLS_SHAPE"].tolist(),
    }


def llm_streams(server: TritonServer, models: tuple[str, ...], per_model: int, max_tokens: int) -> dict[str, list]:
    """``per_model`` concurrent chat streams to each of ``models`` at once (greedy, ``max_tokens`` each); per model,
    each stream's (time to first token, seconds, tokens streamed, ended with the final flag)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(model: str) -> tuple[float, float, int, bool]:
        client = triton_calls.grpc_client(server.endpoints.grpc)
        inputs = {
            "TEXT_INPUT": np.array([b"How do I reset my voicemail PIN?"], dtype=np.object_),
            "MAX_TOKENS": np.array([max_tokens], np.int32),
            "TEMPERATURE": np.array([0.0], np.float32),
        }
        try:
            responses, total = triton_calls.stream(client, model, inputs, ["TEXT_OUTPUT"], timeout_s=300)
        finally:
            client.close()
        text = "".join(r.outputs["TEXT_OUTPUT"][0].decode() for r in responses if "TEXT_OUTPUT" in r.outputs)
        # The stand-in samples single printable byte tokens: one character per token.
        return responses[0].at_s, total, len(text), responses[-1].final

    jobs = [m for m in models for _ in range(per_model)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(one, jobs))
    return {m: [r for job, r in zip(jobs, results, strict=True) if job == m] for m in models}


def llm_stats(repository: Path, model: str) -> dict:
    """What the LLM API stand-in reported about ``model``'s memory (trtllm_torch/README.md)."""
    return json.loads((repository / model / "1" / "standin_stats.json").read_text())
