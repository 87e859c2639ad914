"""The real tritonserver (from nvidia-pytriton) through model_repo.local_server.

* local_server: start, answer over HTTP and gRPC, expose metrics, fail clearly, stop cleanly.
* the rendered cpu configs are accepted by Triton itself (every model READY under strict readiness,
  and the server reports the batching / streaming / tensors we rendered). The Python sources used
  here only load; the real models are exercised by the serving tests.
"""

from __future__ import annotations

import os
import socket
import textwrap
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from model_repo import catalog, render
from model_repo.local_server import TritonServer, TritonStartError, find_installation

pytestmark = pytest.mark.triton

ADD_ONE = textwrap.dedent(
    """
    import ssl  # a C extension of this interpreter's stdlib: needs the stub on the matching libpython

    import numpy as np
    import triton_python_backend_utils as pb_utils

    class TritonPythonModel:
        def initialize(self, args):
            assert ssl.OPENSSL_VERSION
            if "{fail}" == "yes":
                raise RuntimeError("initialize refused: broken on purpose")

        def execute(self, requests):
            responses = []
            for request in requests:
                x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
                responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", (x + 1).astype(np.float32))]))
            return responses
    """
)
ADD_ONE_CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 4
input {{ name: "X" data_type: TYPE_FP32 dims: [ -1 ] }}
output {{ name: "Y" data_type: TYPE_FP32 dims: [ -1 ] }}
instance_group {{ kind: KIND_CPU count: 1 }}
"""


def tiny_model(repo: Path, name: str, fail: bool = False) -> None:
    version = repo / name / "1"
    version.mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(ADD_ONE_CONFIG.format(name=name))
    (version / "model.py").write_text(ADD_ONE.replace("{fail}", "yes" if fail else "no"))


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_installation_is_found():
    install = find_installation()
    assert install.server_binary.is_file() and os.access(install.server_binary, os.X_OK)
    assert install.stub.is_file()


def test_server_starts_serves_http_grpc_metrics_and_stops_cleanly(tmp_path):
    repo = tmp_path / "repo"
    tiny_model(repo, "add_one")
    server = TritonServer(repo, work_dir=tmp_path / "work")
    with server:
        ep = server.endpoints
        assert ep.host == "127.0.0.1"
        assert len({ep.http_port, ep.grpc_port, ep.metrics_port}) == 3

        http = httpclient.InferenceServerClient(ep.http)
        x = httpclient.InferInput("X", [1, 3], "FP32")
        x.set_data_from_numpy(np.array([[1, 2, 3]], np.float32))
        np.testing.assert_array_equal(http.infer("add_one", [x]).as_numpy("Y"), [[2, 3, 4]])
        http.close()

        grpc = grpcclient.InferenceServerClient(ep.grpc)
        assert grpc.is_server_ready() and grpc.is_model_ready("add_one")
        g = grpcclient.InferInput("X", [2, 2], "FP32")
        g.set_data_from_numpy(np.zeros((2, 2), np.float32))
        np.testing.assert_array_equal(grpc.infer("add_one", [g]).as_numpy("Y"), np.ones((2, 2)))
        grpc.close()

        with urllib.request.urlopen(ep.metrics_url, timeout=5) as response:
            metrics = response.read().decode()
        assert 'nv_inference_request_success{model="add_one",version="1"} 2' in metrics
        pid = server.pid
        assert group_alive(pid)

    assert server.pid is None and not server.is_running()
    assert not group_alive(pid), "tritonserver or its Python stubs outlived stop()"
    assert not port_open(ep.http_port) and not port_open(ep.grpc_port)
    assert "Started GRPCInferenceService" in server.log_path.read_text()
    assert server.stop() is None  # a second stop is a no-op


def test_start_waits_for_the_metrics_endpoint_that_triton_opens_after_http(tmp_path):
    """Triton's main starts the metrics endpoint after HTTP, so /v2/health/ready can answer while /metrics still
    refuses connections (a test reading a metric first thing failed so in CI). Played here by an HTTP server that is
    ready at once and a metrics server that opens 0.5 s later: the wait must last until both answer."""
    import http.server
    import subprocess
    import threading
    import time

    from model_repo.local_server import LOOPBACK, Endpoints, free_port

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    health = http.server.ThreadingHTTPServer((LOOPBACK, 0), Answer)
    metrics_port, servers = free_port(), [health]

    def open_metrics_later():
        time.sleep(0.5)
        servers.append(http.server.ThreadingHTTPServer((LOOPBACK, metrics_port), Answer))
        servers[-1].serve_forever()

    threading.Thread(target=health.serve_forever, daemon=True).start()
    threading.Thread(target=open_metrics_later, daemon=True).start()
    server = TritonServer(tmp_path, startup_timeout_s=10)
    server._process = subprocess.Popen(["sleep", "30"])  # stands for the running tritonserver
    try:
        started = time.monotonic()
        server._wait_ready(Endpoints(LOOPBACK, health.server_address[1], 0, metrics_port))
        waited = time.monotonic() - started
        with urllib.request.urlopen(f"http://{LOOPBACK}:{metrics_port}/metrics", timeout=5) as response:
            assert response.status == 200
    finally:
        server._process.kill()
        server._process.wait()
        for each in servers:
            each.shutdown()
            each.server_close()
    assert waited >= 0.5


def test_a_model_that_fails_to_load_gives_a_clear_error_with_the_log(tmp_path):
    repo = tmp_path / "repo"
    tiny_model(repo, "good")
    tiny_model(repo, "broken", fail=True)
    server = TritonServer(repo, work_dir=tmp_path / "work", startup_timeout_s=60)
    with pytest.raises(TritonStartError) as err:
        server.start()
    message = str(err.value)
    assert "exited with code" in message and "initialize refused: broken on purpose" in message
    assert not server.is_running()


def test_explicit_mode_loads_only_the_named_models(tmp_path):
    repo = tmp_path / "repo"
    tiny_model(repo, "first")
    tiny_model(repo, "second")
    with TritonServer(repo, model_control_mode="explicit", load_models=["second"]) as server:
        client = httpclient.InferenceServerClient(server.endpoints.http)
        states = {m["name"]: m.get("state") for m in client.get_model_repository_index()}
        client.close()
    assert states == {"first": None, "second": "READY"}


def test_bad_arguments_are_refused_before_starting(tmp_path):
    with pytest.raises(TritonStartError, match="is not a directory; render one first"):
        TritonServer(tmp_path / "missing").start()
    with pytest.raises(ValueError, match="model_control_mode 'poll'"):
        TritonServer(tmp_path, model_control_mode="poll")
    with pytest.raises(ValueError, match="load_models needs model_control_mode='explicit'"):
        TritonServer(tmp_path, load_models=["x"])


# --- rendered configs in the real server ----------------------------------------------------------

LOAD_ONLY = textwrap.dedent(
    """
    import json
    import triton_python_backend_utils as pb_utils

    class TritonPythonModel:
        def initialize(self, args):
            self.config = json.loads(args["model_config"])

        def execute(self, requests):
            raise pb_utils.TritonModelException("load-only model")
    """
)


def test_rendered_cpu_configs_load_in_the_real_triton(tmp_path):
    sources = tmp_path / "python_models"
    for spec in catalog.CATALOG.values():
        d = sources / spec.target("cpu").python_model
        d.mkdir(parents=True, exist_ok=True)
        (d / "model.py").write_text(LOAD_ONLY)

    def artifact(spec, dest):
        path = dest / "artifact.txt"
        path.write_text(spec.target("cpu").artifact.uri)
        return path

    result = render.render_repository(
        catalog.select({}), "cpu", tmp_path / "repo", python_models_dir=sources, artifact_builder=artifact
    )
    with TritonServer(result.out, startup_timeout_s=120) as server:
        client = grpcclient.InferenceServerClient(server.endpoints.grpc)
        index = {m.name: m.state for m in client.get_model_repository_index().models}
        served = {name: client.get_model_config(name).config for name in index}
        client.close()
    assert index == dict.fromkeys(catalog.CATALOG, "READY")
    for model in result.models:
        got, ours = served[model.name], model.config
        assert got.max_batch_size == ours.max_batch_size, model.name
        assert got.model_transaction_policy.decoupled == ours.model_transaction_policy.decoupled, model.name
        assert [(i.name, i.data_type, list(i.dims), i.optional) for i in got.input] == [
            (i.name, i.data_type, list(i.dims), i.optional) for i in ours.input
        ], model.name
        assert [(o.name, o.data_type, list(o.dims)) for o in got.output] == [
            (o.name, o.data_type, list(o.dims)) for o in ours.output
        ], model.name
        assert list(got.dynamic_batching.preferred_batch_size) == list(ours.dynamic_batching.preferred_batch_size)
        assert got.parameters["weights"].string_value == model.weights


def test_a_numpy_2_environment_is_refused_before_the_server_starts():
    """Under numpy 2 the wheel's Python-backend stub sends small tensors with 0 bytes (seen on GPU machines whose
    Python had numpy 2.5; reproduced with numpy 2.2): refuse, naming the fix, instead of serving wrong answers."""
    from model_repo.local_server import check_stub_numpy

    check_stub_numpy("1.26.4")
    with pytest.raises(TritonStartError, match=r"numpy 2\.2\.6 is installed.*needs numpy < 2.*pip install 'numpy<2'"):
        check_stub_numpy("2.2.6")
