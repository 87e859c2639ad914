"""A real Prometheus for the local platform: scrapes the local Triton and evaluates the platform's rules.

Runs ``/usr/bin/prometheus`` (Debian package ``prometheus``) on a free loopback port with its config
and TSDB in a temporary directory. It scrapes Triton's metrics endpoint every second and loads the
platform's alerting and recording rules (``infra/monitoring/rules/*.yaml``, the same files the cluster's
PrometheusRules are made of), so the local run shows the very series and alerts the dashboards use.
Stopped with SIGTERM (then SIGKILL of its process group) and its directory removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from model_repo.local_server import LOOPBACK, free_port

RULES_DIR = Path(__file__).resolve().parent.parent / "infra" / "monitoring" / "rules"
SCRAPE_INTERVAL_S = 1
JOB = "triton"


class PrometheusError(RuntimeError):
    """Prometheus is missing, refused its config, or did not become ready; carries its log tail."""


def rule_files(directory: Path = RULES_DIR) -> list[Path]:
    """The platform's rule files (promtool unit tests under ``tests/`` are not rule files)."""
    return sorted(directory.glob("*.yaml")) if directory.is_dir() else []


class Prometheus:
    """One Prometheus process scraping ``targets`` (host:port of metrics endpoints)."""

    def __init__(
        self,
        targets: list[str],
        *,
        binary: str | None = None,
        rules: list[Path] | None = None,
        labels: dict[str, str] | None = None,
        startup_timeout_s: float = 30.0,
    ) -> None:
        """``labels``: target labels added to every scraped series, as the cluster's ServiceMonitor adds
        ``namespace`` and ``service``."""
        self.targets = list(targets)
        self.labels = dict(labels or {})
        self.binary = binary or shutil.which("prometheus") or "/usr/bin/prometheus"
        self.rules = rule_files() if rules is None else list(rules)
        self.startup_timeout_s = startup_timeout_s
        self.port: int | None = None
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log = None
        self._process_code: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("Prometheus is not running")
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        if self._dir is None:
            raise RuntimeError("Prometheus was never started")
        return self._dir / "prometheus.log"

    def config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
            "rule_files": [str(p) for p in self.rules],
            "scrape_configs": [
                {"job_name": JOB, "static_configs": [{"targets": self.targets, "labels": self.labels}]}
            ],
        }

    def start(self) -> str:
        if not Path(self.binary).is_file():
            raise PrometheusError(
                f"prometheus not found at {self.binary}; install the Debian package: apt-get install -y prometheus"
            )
        self._dir = Path(tempfile.mkdtemp(prefix="prometheus-"))
        config = self._dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.port = free_port()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 -- lives as long as the process
        self._process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise PrometheusError(f"prometheus exited with code {self._process_code} at start:\n{tail}")
            with (
                contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError, OSError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response,
            ):
                if response.status == 200:
                    return self.url
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise PrometheusError(f"prometheus not ready after {self.startup_timeout_s:.0f}s:\n{tail}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, RuntimeError):
            return ""

    def query(self, expression: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (``[{"metric": {...}, "value": [t, "v"]}, ...]``)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise PrometheusError(f"query {expression!r} failed: {body}")
        return body["data"]["result"]

    def wait_for(self, expression: str, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        """Poll ``expression`` until it returns a non-empty vector; raise PrometheusError after the timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(expression)
            if result:
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(f"{expression!r} still empty after {timeout_s:.0f}s; log:\n{self.log_tail()}")
            time.sleep(0.5)

    def rule_groups(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/rules", timeout=5) as response:
            return json.loads(response.read())["data"]["groups"]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            self._process_code = process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.port = None

    def __enter__(self) -> Prometheus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
