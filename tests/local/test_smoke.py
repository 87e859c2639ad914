"""The smoke check against a real tritonserver: passes on correct models, fails (exit 1) on a wrong answer.

* every served model is ready and answers correctly (request/response and streaming);
* the CLI reads the endpoint from saved ``pulumi stack output --json`` and exits 0, writing its JSON;
* a model that answers wrongly (an embedding that is not unit length) fails the check with exit 1;
* an unreachable endpoint fails with a message saying so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from local import smoke
from model_repo.local_server import TritonServer, free_port

pytestmark = pytest.mark.triton
ROOT = Path(__file__).resolve().parents[2]


def test_every_served_model_is_ready_and_correct(local_triton, speech):
    problem, results = smoke.check_endpoint(local_triton.endpoints.grpc, speech)
    assert problem is None
    by_model = {r.model: r for r in results}
    assert set(by_model) == {"vad", "embed", "retriever", "tts"}
    assert all(r.ok for r in results), smoke.format_table("local", problem, results)
    assert "384-d unit vector" in by_model["embed"].detail
    assert "speech segment" in by_model["vad"].detail
    assert "audio chunks" in by_model["tts"].detail  # streamed over gRPC until the final flag
    assert smoke.passed(problem, results)


def test_cli_reads_the_endpoint_from_stack_outputs(local_triton, tmp_path):
    endpoints = local_triton.endpoints
    outputs = {
        "outputsVersion": "1.0.0",
        "tritonEndpoints": {"speech": {"http": endpoints.http_url, "grpc": endpoints.grpc}},
        "servedModels": {"speech": [{"name": "vad", "versions": ["1"]}, {"name": "embed", "versions": ["1"]}]},
    }
    done = subprocess.run(
        [sys.executable, "-m", "local", "smoke", "--stack-outputs", "-", "--json", str(tmp_path / "smoke.json")],
        input=json.dumps(outputs),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "smoke.json").read_text())
    assert report["passed"] is True
    (endpoint,) = report["endpoints"]
    assert endpoint["target"] == "speech"
    assert sorted(m["model"] for m in endpoint["models"]) == ["embed", "vad"]  # servedModels of that pool


WRONG_EMBED = textwrap.dedent(
    """
    import numpy as np
    import triton_python_backend_utils as pb_utils

    class TritonPythonModel:
        def execute(self, requests):
            # Twice a unit vector: shaped right, answered wrong.
            return [pb_utils.InferenceResponse([pb_utils.Tensor("EMBEDDING", np.full((1, 384), 0.1, np.float32))])
                    for _ in requests]
    """
)
WRONG_EMBED_CONFIG = """
name: "embed"
backend: "python"
max_batch_size: 4
input { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] }
output { name: "EMBEDDING" data_type: TYPE_FP32 dims: [ 384 ] }
instance_group { kind: KIND_CPU count: 1 }
parameters { key: "role" value { string_value: "embed" } }
"""


def test_a_wrong_answer_fails_the_check_with_exit_status_1(tmp_path):
    version = tmp_path / "repo" / "embed" / "1"
    version.mkdir(parents=True)
    (tmp_path / "repo" / "embed" / "config.pbtxt").write_text(WRONG_EMBED_CONFIG)
    (version / "model.py").write_text(WRONG_EMBED)
    with TritonServer(tmp_path / "repo", work_dir=tmp_path / "server") as server:
        done = subprocess.run(
            [sys.executable, "-m", "local", "smoke", "--url", server.endpoints.grpc],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL" in done.stdout and "unit length" in done.stdout
    assert "smoke: FAILED" in done.stdout


def test_an_unreachable_endpoint_is_reported(speech):
    problem, results = smoke.check_endpoint(f"127.0.0.1:{free_port()}", speech)
    assert problem is not None and "unreachable" in problem
    assert results == [] and not smoke.passed(problem, results)
