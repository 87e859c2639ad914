"""The smoke client against a real tritonserver (the nvidia-pytriton build), started with the serving
flags the Deployment passes, on small Python-backend models that answer right, answer wrong, stream,
or are not loaded."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from local import smoke as smoke_job
from model_repo.local_server import TritonServer, find_installation
from tests.triton.triton_fixtures import CONFIGS, FIXTURES, SERVED, SET_BY_LOCAL_SERVER, serving_flags

SHIPPED = ("__init__", "smoke", "model_inputs", "triton_calls")  # what the serving image ships of local/


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("smoke-repository")
    for name, config in CONFIGS.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(config)
        shutil.copy(FIXTURES / "smoke_model.py", repo / name / "1" / "model.py")
    extra = [f for f in serving_flags() if not f.startswith(SET_BY_LOCAL_SERVER)]
    with TritonServer(repo, model_control_mode="explicit", load_models=SERVED, extra_args=extra) as running:
        yield running


def test_every_serving_flag_is_a_tritonserver_option():
    install = find_installation()
    env = {"LD_LIBRARY_PATH": str(install.library_dir)}
    shown = subprocess.run([str(install.server_binary), "--help"], capture_output=True, text=True, env=env)
    help_text = shown.stdout + shown.stderr
    options = set(re.findall(r"^\s+(--[a-z0-9-]+)", help_text, re.MULTILINE))
    assert "--model-repository" in options and len(options) > 40
    used = {flag.split("=", 1)[0] for flag in serving_flags()} | {"--model-repository"}
    assert used <= options, f"unknown tritonserver flags: {sorted(used - options)}"


def test_smoke_passes_on_models_that_answer_right(server, capsys):
    grpc = server.endpoints.grpc
    assert smoke_job.main(["--check", f"{grpc}=vad_like,embed_like,llm_like", "--wait", "30"]) == 0
    out = capsys.readouterr().out
    assert "3/3 models passed" in out
    assert re.search(r"llm_like\s+unknown\s+yes\s+ok .*stream: TEXT_OUTPUT x3", out)
    assert re.search(r"embed_like\s+unknown\s+yes\s+ok .*EMBEDDING\[1, 8\]", out)


def test_smoke_fails_with_a_clear_message_on_a_wrong_answer_and_a_model_not_ready(server, capsys):
    grpc = server.endpoints.grpc
    assert smoke_job.main(["--check", f"{grpc}=vad_like,wrong_vad,never_loaded", "--wait", "30"]) == 1
    captured = capsys.readouterr()
    assert "1/3 models passed" in captured.out
    wrong = (
        r"model wrong_vad at \S+: inference: output SPEECH_PROBS ranges \[2\.\d+, \d+\.\d+\], "
        r"probabilities need \[0, 1\]"
    )
    assert re.search(wrong, captured.err)
    assert re.search(r"model never_loaded at \S+: is not ready \(in the repository, not loaded\)", captured.err)


def test_smoke_cli_runs_standalone_and_checks_every_listed_model(server, tmp_path):
    # As in the Job: only the modules the image ships (no checkout on the path), every model the server lists.
    shipped = tmp_path / "platform" / "local"
    shipped.mkdir(parents=True)
    for name in SHIPPED:
        shutil.copy(Path(smoke_job.__file__).with_name(f"{name}.py"), shipped / f"{name}.py")
    run_module = (
        "import runpy, sys; sys.path.insert(0, sys.argv.pop(1));runpy.run_module('local.smoke', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", run_module, str(shipped.parent), "--check", server.endpoints.grpc, "--wait", "30"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3/5 models passed" in result.stdout
    assert "wrong_vad" in result.stderr and "never_loaded" in result.stderr


def test_smoke_reports_an_unreachable_server(capsys):
    assert smoke_job.main(["--check", "127.0.0.1:9=vad", "--wait", "1"]) == 1
    assert "model vad at 127.0.0.1:9: server unreachable" in capsys.readouterr().err


def test_served_metrics_carry_what_the_autoscaler_and_monitoring_read(server):
    """With the Deployment's flags, Triton exports the counters KEDA's queue-time trigger divides, and the
    latency summaries the monitoring rules read."""
    import urllib.request

    from infra.monitoring.monitors import TRITON_METRICS_ARGS
    from infra.triton.autoscaling import queue_ms_query

    assert smoke_job.main(["--check", f"{server.endpoints.grpc}=vad_like,llm_like", "--wait", "30"]) == 0
    with urllib.request.urlopen(server.endpoints.metrics_url, timeout=10) as response:
        text = response.read().decode()
    families = set(re.findall(r"^# TYPE (\w+) ", text, re.MULTILINE))
    query = queue_ms_query("triton", "triton-speech")
    counters = re.findall(r"rate\((\w+)\{", query)
    assert counters
    for counter in counters:
        assert counter in families, f"the queue-time trigger reads {counter}, which Triton does not export"
    assert re.search(r'^nv_inference_request_success\{model="vad_like",version="1"\} [1-9]', text, re.MULTILINE)
    assert "nv_inference_request_summary_us" in families  # --metrics-config=summary_latencies=true
    # The first-response histogram (histogram_latencies=true) exists from Triton 2.5x releases on; the
    # 2.51 build here accepts the flag (the server started with it) but has no such family yet.
    assert set(TRITON_METRICS_ARGS) <= set(serving_flags())


def test_administrative_apis_need_the_admin_key_and_inference_does_not(server):
    """With the Deployment's flags, Triton's logging/trace/shared-memory APIs refuse a request without the admin
    header, over HTTP and gRPC, while health, metadata and inference stay open. (Outside Kubernetes the flag's
    $(TRITON_ADMIN_KEY) is not expanded, so the literal text is the key here.)"""
    import urllib.error
    import urllib.request

    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from infra.triton.deployment import ADMIN_KEY_ENV, ADMIN_KEY_HEADER

    url = f"{server.endpoints.http_url}/v2/logging"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 403
    request = urllib.request.Request(url, headers={ADMIN_KEY_HEADER: f"$({ADMIN_KEY_ENV})"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    client = grpcclient.InferenceServerClient(server.endpoints.grpc)
    try:
        with pytest.raises(InferenceServerException, match="(?i)permission|restricted|unavailable|denied"):
            client.get_log_settings()
        assert client.is_server_ready() and client.get_model_metadata("vad_like")
    finally:
        client.close()
    assert smoke_job.main(["--check", f"{server.endpoints.grpc}=vad_like", "--wait", "10"]) == 0
