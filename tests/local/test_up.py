"""``python -m local up`` for real, twice: the second run adopts every engine (0 builds), both stop cleanly.

The run is narrowed to the embedder (``--only embed``: one ONNX engine, no pipeline) to keep it short;
the full stack is the same code with more models. Checked: the engine went through the Engine
provider into the local store and is what the served model loads (its digest in ``artifact.json``),
Triton and a real Prometheus (scraping Triton, the platform's rule files loaded) ran and were stopped,
and the CLI prints the endpoints and the build count.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from engines.store.local import LocalStore
from local.platform_run import up
from local.prometheus import rule_files
from platform_spec.digests import file_sha256

pytestmark = [pytest.mark.triton, pytest.mark.prometheus]
ROOT = Path(__file__).resolve().parents[2]


def _listening(url: str) -> bool:
    parsed = urlparse(url if "://" in url else f"grpc://{url}")
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((parsed.hostname, parsed.port)) == 0


def test_up_twice_builds_once_then_adopts(tmp_path):
    store = tmp_path / "store"
    lines: list[str] = []
    first = up("dev", work_dir=tmp_path / "run1", store=store, only=["embed"], out=lines.append)

    assert first.models == ["embed"]
    assert (first.engines_built, first.engines_adopted) == (1, 0)
    (engine,) = first.engines
    assert LocalStore(store).verify(engine["key"]).ok  # published by the provider, every file checksummed
    served = tmp_path / "run1" / "repository" / "embed" / "1"
    manifest = json.loads((served / "artifact.json").read_text())
    assert manifest["engine"]["key"] == engine["key"] and manifest["engine"]["builder"] == "onnxruntime"
    assert file_sha256(served / manifest["main_file"]) == manifest["files"][manifest["main_file"]]

    assert first.prometheus["rule_files"] == len(rule_files()) and first.prometheus["rules"] > 0
    assert set(first.endpoints) == {"http", "grpc", "metrics", "prometheus"}
    assert not any(_listening(url) for url in first.endpoints.values())  # everything stopped
    assert json.loads((tmp_path / "run1" / "up.json").read_text())["engines_built"] == 1
    assert any("pipeline" in line and "skipped" in line for line in lines)

    # Second run through the CLI, on a freshly rendered repository and the same store.
    done = subprocess.run(
        [sys.executable, "-m", "local", "up", "--stack", "dev", "--only", "embed",
         "--work-dir", str(tmp_path / "run2"), "--store", str(store)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "0 built, 1 adopted from the store" in done.stdout
    assert "stopped prometheus and tritonserver (exit code 0)" in done.stdout
    second = json.loads((tmp_path / "run2" / "up.json").read_text())
    assert (second["engines_built"], second["engines_adopted"]) == (0, 1)
    assert second["engines"][0]["key"] == engine["key"]
    for name in ("grpc", "prometheus"):
        assert second["endpoints"][name] in done.stdout


def test_up_refuses_an_unknown_model_before_doing_anything(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "local", "up", "--stack", "dev", "--only", "nope", "--work-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--only nope" in done.stderr and "enabled" in done.stderr
    assert not any(tmp_path.iterdir())
