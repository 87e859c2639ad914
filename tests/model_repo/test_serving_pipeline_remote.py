"""The voice pipeline as the gpu target deploys it: two real Triton servers, the LLM on the other one.

On GPU stacks each pool runs its own server; ``llm_chat`` lives on the llm pool's, which BLS cannot
reach. Here one tritonserver plays the llm pool (the cpu ``llm_chat``: SmolLM2-135M-Instruct,
decoupled) and another the speech pool (the cpu speech models plus ``voice_pipeline`` with the config
the renderer writes for the gpu target, ``llm_endpoint_pool: "llm"``), started with the
``TRITON_GRPC_ENDPOINTS`` value the Deployment gives its pods. A spoken utterance goes in over a gRPC
stream; the LLM's tokens stream from the other server over the pipeline's own gRPC stream.

Not run here: the gpu-target models behind the speech stages (TensorRT engines) and the TensorRT-LLM
``llm_chat``; the pipeline code and its config are the gpu target's.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from infra.triton.deployment import deployment_manifest
from model_repo import catalog, render
from model_repo.local_server import TritonServer
from platform_spec.serving import triton_settings
from platform_spec.settings import load_stack_settings
from tests.gpu_standins import checks
from tests.model_repo.conftest import Serving, check_streamed_while_generating, voice_turn

pytestmark = pytest.mark.triton

SPEECH_STAGES = ("anc", "vad", "asr", "embed", "retriever", "tts")
MAX_TOKENS = 100  # > 2 x the pipeline's phrase length: the first phrase is spoken before the last token


def _copy_models(source: Path, dest: Path, names) -> None:
    for name in names:
        shutil.copytree(source / name, dest / name)


def _gpu_pipeline(dest: Path, name: str = "voice_pipeline", **parameters: str) -> None:
    """voice_pipeline with its gpu-target config (the cpu models' code is the same directory)."""
    (config,) = [m.config for m in render.rendered_models(catalog.select({}), "gpu") if m.name == "voice_pipeline"]
    config.name = name
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    (dest / name / "1").mkdir(parents=True)
    (dest / name / "config.pbtxt").write_text(text_format.MessageToString(config))
    shutil.copytree(render.PYTHON_MODELS_DIR / "voice_pipeline", dest / name / "1", dirs_exist_ok=True)
    shutil.copytree(render.PYTHON_MODELS_DIR / render.COMMON_DIR, dest / name / "1" / render.COMMON_DIR)


def deployment_endpoints_env(endpoints: dict[str, str]) -> str:
    """TRITON_GRPC_ENDPOINTS exactly as the speech pool's Deployment sets it (dev stack)."""
    settings = load_stack_settings("dev")
    pool = next(p for p in settings.gpu_pools if p.role == "speech")
    manifest = deployment_manifest(
        pool=pool, settings=triton_settings(settings), image="triton@sha256:" + "0" * 64,
        repository_uri="s3://models/triton-repositories/v/speech", repository_version="v",
        roles=sorted({s.role for s in catalog.select({}) if s.pool == "speech"}),
        region=settings.region, grpc_endpoints=endpoints,
    )  # fmt: skip
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return next(e["value"] for e in container["env"] if e["name"] == "TRITON_GRPC_ENDPOINTS")


@pytest.fixture(scope="module")
def pools(cpu_repository, tmp_path_factory):
    """(llm pool server, speech pool server), started side by side."""
    llm_repo, speech_repo = tmp_path_factory.mktemp("llm-pool"), tmp_path_factory.mktemp("speech-pool")
    _copy_models(cpu_repository.out, llm_repo, ["llm_chat"])
    _gpu_pipeline(llm_repo)  # loaded on demand: a server whose pods lack the endpoints
    _copy_models(cpu_repository.out, speech_repo, SPEECH_STAGES)
    _gpu_pipeline(speech_repo)
    _gpu_pipeline(speech_repo, "pipeline_to_nowhere", llm_endpoint_pool="nowhere")

    # Short drains: these servers hold no client connections when the module ends.
    llm = TritonServer(
        llm_repo,
        model_control_mode="explicit",
        load_models=["llm_chat"],
        work_dir=tmp_path_factory.mktemp("llm-server"),
        exit_timeout_s=1,
        env={"TRITON_GRPC_ENDPOINTS": ""},  # the llm pool's own pods: as if they had no endpoints
    )
    llm.start()  # first: its ports go into the speech pool's environment
    try:
        env = deployment_endpoints_env({"llm": llm.endpoints.grpc, "speech": "127.0.0.1:1"})
        speech = TritonServer(
            speech_repo,
            model_control_mode="explicit",
            load_models=[*SPEECH_STAGES, "voice_pipeline"],
            work_dir=tmp_path_factory.mktemp("speech-server"),
            exit_timeout_s=1,
            env={"TRITON_GRPC_ENDPOINTS": env},
        )
        with speech:
            yield llm, speech
    finally:
        llm.stop()


@contextmanager
def _serving(server: TritonServer) -> Iterator[Serving]:
    """The test clients of ``server``, closed afterwards (a server stops at once only without open clients)."""
    serving = Serving(server)
    try:
        yield serving
    finally:
        serving.http.close()
        serving.grpc.close()


def _ready(serving: Serving) -> set[str]:
    return {m["name"] for m in serving.http.get_model_repository_index() if m.get("state") == "READY"}


def test_the_pipeline_streams_the_llm_of_the_other_pools_server_over_grpc(pools, speech_sample):
    llm, speech = pools
    with _serving(llm) as llm_serving, _serving(speech) as speech_serving:
        assert "llm_chat" not in _ready(speech_serving) and _ready(llm_serving) == {"llm_chat"}
        served = "nv_inference_request_success"
        before = checks.counters(llm_serving, "llm_chat", (served,))[served]
        turn = voice_turn(speech_serving, speech_sample, MAX_TOKENS)
        after = checks.counters(llm_serving, "llm_chat", (served,), requests=before + 1)[served]

    first = turn[0].outputs
    assert set(first) == {"TRANSCRIPT", "SPEECH_SEGMENTS", "PASSAGES"}
    assert "hear" in first["TRANSCRIPT"][0].decode().lower()  # Whisper tiny.en heard the question
    kinds = [next(iter(r.outputs)) if r.outputs else "final" for r in turn[1:]]
    text_at = [i for i, k in enumerate(kinds) if k == "TEXT_OUTPUT"]
    audio_at = [i for i, k in enumerate(kinds) if k == "AUDIO"]
    assert kinds[-1] == "final" and turn[-1].final
    pieces = [turn[1 + i].outputs["TEXT_OUTPUT"][0].decode() for i in text_at]
    assert len("".join(pieces).split()) >= 3, f"the remote LLM's answer reaches the caller: {pieces!r}"
    check_streamed_while_generating(kinds, pieces)
    speech_audio = np.concatenate([turn[1 + i].outputs["AUDIO"] for i in audio_at])
    assert float(np.sqrt(np.mean(speech_audio**2))) > 0.01
    # The answer was generated by the llm pool's server: one more request served there.
    assert after == before + 1
    print(
        f"remote LLM pipeline: first response {turn[0].arrived_s:.2f} s, first audio "
        f"{turn[1 + audio_at[0]].arrived_s:.2f} s, done {turn[-1].arrived_s:.2f} s"
    )


def test_a_pod_without_the_llm_pools_endpoint_refuses_to_load_the_pipeline(pools):
    llm, speech = pools
    with _serving(llm) as llm_serving, _serving(speech) as speech_serving:
        _refused_loads(llm_serving.http, speech_serving.http)


def _refused_loads(client, speech_client) -> None:
    unresolved = r"voice_pipeline: config parameter llm_endpoint_pool = 'llm' says the model it calls is served by "
    with pytest.raises(Exception, match=unresolved + r"GPU pool 'llm', but TRITON_GRPC_ENDPOINTS is not set"):
        client.load_model("voice_pipeline")
    assert not client.is_model_ready("voice_pipeline") and client.is_model_ready("llm_chat")

    with pytest.raises(
        Exception, match=r"names no endpoint for 'nowhere' \(it has \['llm', 'speech'\]\); name the GPU"
    ):
        speech_client.load_model("pipeline_to_nowhere")
    assert speech_client.is_model_ready("voice_pipeline")


def test_deployment_env_is_the_json_map_of_pool_to_grpc_endpoint():
    env = deployment_endpoints_env({"llm": "triton-llm.triton.svc.cluster.local:8001"})
    assert json.loads(env) == {"llm": "triton-llm.triton.svc.cluster.local:8001"}
