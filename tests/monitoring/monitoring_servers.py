"""Servers for the end-to-end monitoring test: a real Prometheus, and small exposition
servers for the metric families no real server here can produce.

* ``PrometheusServer``: ``/usr/bin/prometheus`` (Debian's ``prometheus`` package) on a free
  loopback port with a temporary TSDB, stopped (SIGTERM, then SIGKILL of its process) at
  the end.
* ``ExpositionServer``: serves Prometheus text exposition built by a callback on each
  scrape. Used only for DCGM exporter fields (there is no GPU here) and for Triton's
  first-response histogram (the Triton 2.51 available here predates it); the tests keep
  its metric names to ``infra.monitoring.metric_catalog`` and never let it serve a name
  the real Triton exposes.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from model_repo.local_server import LOOPBACK, free_port


class ExpositionServer:
    """An HTTP ``/metrics`` endpoint whose body ``render()`` builds on every scrape."""

    def __init__(self, render: Callable[[], str]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 -- http.server's method name
                body = outer.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.render = render
        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def target(self) -> str:
        return f"{LOOPBACK}:{self._server.server_address[1]}"

    def __enter__(self) -> ExpositionServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class PrometheusServer:
    """A real Prometheus on a loopback port with ``config`` (a prometheus.yml as data)."""

    def __init__(self, config: dict[str, Any], work_dir: Path) -> None:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(binary).exists():
            raise RuntimeError("prometheus not found: install Debian's 'prometheus' package")
        self.binary = binary
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = work_dir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log_path = work_dir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        check = subprocess.run(
            [shutil.which("promtool") or "/usr/bin/promtool", "check", "config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check.returncode != 0:
            raise RuntimeError(f"promtool rejects the test's Prometheus config:\n{check.stdout}{check.stderr}")
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.work_dir / 'tsdb'}",
                    f"--web.listen-address={LOOPBACK}:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"prometheus not ready after 30 s:\n{self.log_tail()}")

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as error:
            raise AssertionError(f"Prometheus rejected {params or path}: {error.read().decode()}") from None
        assert payload["status"] == "success", payload
        return payload["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant vector result of ``expr`` (scalars come back as one unlabelled sample)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def finite_samples(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """The series of ``expr`` whose current value is a finite number."""
        samples = [(item["metric"], float(item["value"][1])) for item in self.query(expr)]
        return [(labels, value) for labels, value in samples if math.isfinite(value)]
