"""Fixtures of the serving tests: one rendered CPU repository, one real tritonserver, real test audio.

The CPU repository of the whole catalog is rendered once per session (its artifacts come from the
content-addressed cache, ``$MODEL_REPO_ARTIFACT_CACHE`` or ``~/.cache/triton-platform/artifacts``) and
served by one tritonserver (from ``nvidia-pytriton``) on free loopback ports, with strict readiness;
every serving test talks to that server over HTTP and gRPC, which keeps model loading to one time
per run. Test speech is spoken by espeak-ng and mixed with sox's pink noise at test time
(``local.speech_sample``, the platform's one speech-sample maker).
"""

from __future__ import annotations

import json
import queue
import shutil
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from local.speech_sample import SpeechSample
from local.speech_sample import speech_sample as make_speech_sample
from local.voice_turn import pipeline_inputs
from model_repo import catalog, render
from model_repo.local_server import TritonServer
from tests.gpu_standins import checks

SPEECH_TEXT = "Hello, I cannot hear the other person during my calls. How do I fix the audio?"
LEAD_SILENCE_S = 1.5  # known silence (then only noise) before the speech
TAIL_SILENCE_S = 1.0
NOISE_VOLUME = 0.2  # sox pinknoise amplitude: about -28 dBFS, ~8 dB below the speech


@pytest.fixture(scope="session")
def speech_sample() -> SpeechSample:
    sample = make_speech_sample(SPEECH_TEXT, lead_silence_s=LEAD_SILENCE_S, tail_silence_s=TAIL_SILENCE_S,
                                peak=None, pink_noise_volume=NOISE_VOLUME)  # fmt: skip
    assert sample.speech_start_s >= LEAD_SILENCE_S - 0.01, "espeak-ng speech should start after the padding"
    return sample


# --- the server -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cpu_repository(tmp_path_factory) -> render.RenderResult:
    """The whole catalog rendered for the cpu target (every model the platform can serve)."""
    specs = catalog.select({})
    assert {s.name for s in specs} == set(catalog.CATALOG), "every catalog model is enabled by default"
    return render.render_repository(specs, "cpu", tmp_path_factory.mktemp("cpu") / "repository")


@pytest.fixture(scope="session")
def triton(cpu_repository, tmp_path_factory) -> Iterator[TritonServer]:
    server = TritonServer(
        cpu_repository.out,
        strict_readiness=True,
        startup_timeout_s=240,
        work_dir=tmp_path_factory.mktemp("triton"),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


NUMPY_TO_TRITON = {"float32": "FP32", "float64": "FP64", "int16": "INT16", "int32": "INT32", "int64": "INT64"}


def _triton_dtype(value: np.ndarray) -> str:
    return "BYTES" if value.dtype == np.object_ else NUMPY_TO_TRITON[value.dtype.name]


@dataclass
class StreamResponse:
    outputs: dict[str, np.ndarray]
    final: bool
    arrived_s: float  # seconds after the request was sent


class StreamError(Exception):
    """A streamed response carried an error; the message is the server's."""


class Serving:
    """The running server as the tests use it: HTTP and gRPC clients, streaming, metrics."""

    StreamError = StreamError

    def __init__(self, server: TritonServer) -> None:
        self.endpoints = server.endpoints
        self.http = httpclient.InferenceServerClient(self.endpoints.http, concurrency=16, network_timeout=120)
        self.grpc = grpcclient.InferenceServerClient(self.endpoints.grpc)

    @staticmethod
    def http_inputs(values: dict[str, np.ndarray]) -> list[httpclient.InferInput]:
        inputs = []
        for name, value in values.items():
            tensor = httpclient.InferInput(name, list(value.shape), _triton_dtype(value))
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        return inputs

    @staticmethod
    def grpc_inputs(values: dict[str, np.ndarray]) -> list[grpcclient.InferInput]:
        inputs = []
        for name, value in values.items():
            tensor = grpcclient.InferInput(name, list(value.shape), _triton_dtype(value))
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        return inputs

    def infer_http(self, model: str, values: dict[str, np.ndarray]) -> httpclient.InferResult:
        return self.http.infer(model, self.http_inputs(values))

    def infer_grpc(self, model: str, values: dict[str, np.ndarray]) -> grpcclient.InferResult:
        return self.grpc.infer(model, self.grpc_inputs(values))

    def stream(self, model: str, values: dict[str, np.ndarray], timeout: float = 120.0) -> list[StreamResponse]:
        """Every response of one request to a decoupled model over a gRPC stream, in arrival order."""
        client = grpcclient.InferenceServerClient(self.endpoints.grpc)
        results: queue.Queue = queue.Queue()
        client.start_stream(callback=lambda result, error: results.put((result, error)))
        start = time.monotonic()
        try:
            client.async_stream_infer(model, self.grpc_inputs(values), enable_empty_final_response=True)
            responses = []
            while True:
                result, error = results.get(timeout=timeout)
                if error is not None:
                    raise StreamError(str(error))
                message = result.get_response()
                final = message.parameters["triton_final_response"].bool_param
                outputs = {o.name: result.as_numpy(o.name) for o in message.outputs}
                responses.append(StreamResponse(outputs, final, time.monotonic() - start))
                if final:
                    return responses
        finally:
            client.stop_stream()
            client.close()

    def stream_http(self, model: str, body: dict) -> list[dict]:
        """Every event of one request to a decoupled model over HTTP (``generate_stream``, server-sent events)."""
        request = urllib.request.Request(
            f"{self.endpoints.http_url}/v2/models/{model}/generate_stream",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            lines = response.read().decode().splitlines()
        return [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]

    def metric(self, name: str, model: str) -> float:
        """The value of a Triton metric for ``model`` (summed over its versions)."""
        return checks.metric(self, name, model)


def voice_turn(serving: Serving, speech_sample: SpeechSample, max_tokens: int) -> list[StreamResponse]:
    """One voice turn through ``voice_pipeline``: the noisy speech in, every streamed response out."""
    return serving.stream("voice_pipeline", pipeline_inputs(speech_sample.noisy, max_tokens))


@pytest.fixture(scope="session")
def serving(triton) -> Serving:
    return Serving(triton)


@pytest.fixture(scope="session")
def model_configs(serving) -> dict[str, dict]:
    """The configs as the running server reports them (not as we rendered them)."""
    return {name: serving.http.get_model_config(name) for name in catalog.CATALOG}


PYTHON_MODELS = Path(__file__).resolve().parents[2] / "model_repo" / "python_models"


def gpu_model_on_cpu(
    repo: Path, spec: catalog.ModelSpec, *, name: str | None = None, parameters: Mapping[str, str] | None = None
) -> Path:
    """``spec``'s gpu-target config and Python model under ``repo/<name>`` (default: the model's name), its instance
    moved to the CPU and ``parameters`` added; returns the version directory (``1/``)."""
    config = render.model_config(spec, "gpu")
    config.name = name or spec.name
    config.instance_group[0].kind = mc.ModelInstanceGroup.KIND_CPU
    del config.instance_group[0].gpus[:]
    for key, value in (parameters or {}).items():
        config.parameters[key].string_value = value
    (repo / config.name).mkdir(parents=True, exist_ok=True)
    (repo / config.name / "config.pbtxt").write_text(text_format.MessageToString(config))
    version = repo / config.name / "1"
    shutil.copytree(PYTHON_MODELS / spec.target("gpu").python_model, version, dirs_exist_ok=True)
    shutil.copytree(PYTHON_MODELS / "_common", version / "_common")
    return version


def first_phrase_end(pieces: list[str], phrase_chars: int = 48) -> int:
    """The index of the streamed text piece that completes the answer's first phrase, by the pipeline's rule (a
    sentence end; a word break once ``phrase_chars`` long; or twice that length): TTS speaks the phrase after it."""
    phrase = ""
    for index, piece in enumerate(pieces):
        phrase += piece
        if phrase.rstrip()[-1:] in ".?!" or (len(phrase) >= phrase_chars and phrase.endswith(" ")):
            return index
        if len(phrase) >= 2 * phrase_chars:
            return index
    return len(pieces) - 1


def check_streamed_while_generating(kinds: list[str], pieces: list[str]) -> None:
    """Streaming, not buffering: the first phrase's audio follows the piece that completes it, and -- where the
    answer goes on past its first phrase -- arrives before the LLM's last piece (the caller hears the start while the
    rest is generated). A one-phrase answer can only show the first half."""
    text_at = [i for i, k in enumerate(kinds) if k == "TEXT_OUTPUT"]
    audio_at = [i for i, k in enumerate(kinds) if k == "AUDIO"]
    assert audio_at, "the answer was spoken"
    phrase_done_at = text_at[first_phrase_end(pieces)]
    assert audio_at[0] > phrase_done_at, "TTS speaks a phrase once it is complete"
    if phrase_done_at < text_at[-1]:
        assert audio_at[0] < text_at[-1], "the first phrase is spoken while the LLM still generates"
