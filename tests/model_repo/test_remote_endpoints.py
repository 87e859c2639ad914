"""Where the Python models find the gRPC endpoints they call (``_common/remote.py``), and the errors that name the
setting and its fix when one is missing or malformed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "model_repo" / "python_models" / "_common" / "remote.py"
_spec = importlib.util.spec_from_file_location("python_models_remote", _PATH)
remote = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(remote)


def test_own_endpoint_is_the_variable_or_tritons_default_port_on_loopback():
    assert remote.own_endpoint("voice_pipeline", {}) == "127.0.0.1:8001"
    assert remote.own_endpoint("voice_pipeline", {"TRITON_OWN_GRPC_ENDPOINT": "127.0.0.1:41234"}) == "127.0.0.1:41234"


@pytest.mark.parametrize("value", ["8001", "localhost", "host:port", ":8001"])
def test_a_malformed_own_endpoint_names_the_variable_and_the_fix(value):
    expected = rf"voice_pipeline: TRITON_OWN_GRPC_ENDPOINT is '{value}'; set it to host:port"
    with pytest.raises(RuntimeError, match=expected):
        remote.own_endpoint("voice_pipeline", {"TRITON_OWN_GRPC_ENDPOINT": value})


def test_a_pool_endpoint_comes_from_the_pods_map_or_an_error_names_the_pool():
    environ = {"TRITON_GRPC_ENDPOINTS": '{"llm": "triton-llm.triton:8001"}'}
    assert remote.resolve_endpoint("voice_pipeline", "llm_endpoint_pool", "llm", environ) == "triton-llm.triton:8001"
    with pytest.raises(RuntimeError, match=r"names no endpoint for 'llm-main' \(it has \['llm'\]\)"):
        remote.resolve_endpoint("voice_pipeline", "llm_endpoint_pool", "llm-main", environ)
    with pytest.raises(RuntimeError, match="TRITON_GRPC_ENDPOINTS is not set"):
        remote.resolve_endpoint("voice_pipeline", "llm_endpoint_pool", "llm", {})


# --- a stream over gRPC, on the real server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    from model_repo.local_server import TritonServer
    from tests.model_repo import python_backend_probes

    repo = tmp_path_factory.mktemp("sources")
    for name, stall_s in (("source", "0"), ("stalled_source", "3")):
        python_backend_probes.add(repo, name, "stream_source.py", inputs=("N",), decoupled=True, stall_s=stall_s,
                                  outputs={"OUT": ("TYPE_FP32", 4)})  # fmt: skip
    with TritonServer(repo, work_dir=tmp_path_factory.mktemp("sources-server")) as server:
        yield server


def _collect(server, model: str, timeout_s: float) -> list:
    import asyncio

    import numpy as np

    async def collect():
        stream = remote.RemoteModels(timeout_s=timeout_s).stream(
            server.endpoints.grpc, model, {"N": np.array([3], dtype=np.int32)}, ["OUT"]
        )
        return [found["OUT"].tolist() async for found in stream]

    loop = asyncio.new_event_loop()  # a private loop: the main thread's stays as the other tests left it
    try:
        return loop.run_until_complete(collect())
    finally:
        loop.close()


@pytest.mark.triton
def test_a_stream_yields_each_response_and_ends_at_the_final_one(sources):
    assert _collect(sources, "source", 10) == [[0.0] * 4, [1.0] * 4, [2.0] * 4]


@pytest.mark.triton
def test_a_stage_that_sends_nothing_within_the_timeout_fails_the_stream_naming_it(sources):
    with pytest.raises(RuntimeError, match=r"model 'stalled_source' at .* sent nothing for 0.5 s; is its server up\?"):
        _collect(sources, "stalled_source", 0.5)
