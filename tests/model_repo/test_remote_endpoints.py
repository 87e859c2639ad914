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
