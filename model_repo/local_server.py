"""Run the real Triton Inference Server locally on a model repository.

The ``nvidia-pytriton`` wheel ships a complete ``tritonserver`` binary with the Python backend. This
module starts it the way the wheel needs -- its shared libraries on ``LD_LIBRARY_PATH``, behind this
interpreter's own ``libpython``; the Python backend stub built for the running Python version next to
the backend; this interpreter's ``bin`` first on ``PATH`` so the stub runs models with this
environment's packages -- on free loopback ports, and stops it cleanly. Tests, benchmarks and
``python -m model_repo serve`` all use it::

    from model_repo.local_server import TritonServer

    with TritonServer(repo_dir) as server:           # starts, waits until ready (or raises)
        client = tritonclient.http.InferenceServerClient(server.endpoints.http)
        ...
    # stopped: SIGTERM, Triton drains for --exit-timeout-secs, then the process group is killed

Public API: :class:`TritonServer` (``start``, ``stop``, ``endpoints``, ``log_path``, ``log_tail``,
``pid``, context manager), :class:`Endpoints`, :class:`TritonStartError`, :func:`find_installation`.
"""

from __future__ import annotations

import contextlib
import filecmp
import importlib.metadata
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LOOPBACK = "127.0.0.1"


class TritonStartError(RuntimeError):
    """Triton could not be found, started, or did not become ready; the message carries its log tail."""


@dataclass(frozen=True)
class Installation:
    """Where the pytriton wheel keeps the server pieces."""

    server_binary: Path
    library_dir: Path  # nvidia_pytriton.libs
    backends_dir: Path  # contains python/libtriton_python.so
    stub: Path  # the Python backend stub for the running Python version


def find_installation() -> Installation:
    """Locate the tritonserver shipped by ``nvidia-pytriton`` for this interpreter."""
    # Locate the package without importing it: its __init__ pulls in its client stack, which the
    # server binary does not need.
    found = importlib.util.find_spec("pytriton")
    if found is None or found.origin is None:
        raise TritonStartError(
            "nvidia-pytriton is not installed in this environment; install it (it ships tritonserver): "
            f"{sys.executable} -m pip install nvidia-pytriton"
        )
    package = Path(found.origin).resolve().parent
    dist = package / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = Installation(
        server_binary=dist / "bin" / "tritonserver",
        library_dir=package.parent / "nvidia_pytriton.libs",
        backends_dir=dist / "backends",
        stub=dist / "python_backend_stubs" / version / "triton_python_backend_stub",
    )
    for what, path in (
        ("tritonserver binary", install.server_binary),
        ("its shared libraries", install.library_dir),
        ("the Python backend", install.backends_dir / "python" / "libtriton_python.so"),
        (f"the Python backend stub for Python {version}", install.stub),
    ):
        if not path.exists():
            raise TritonStartError(f"{what} not found at {path}; reinstall nvidia-pytriton for Python {version}")
    check_stub_numpy(importlib.metadata.version("numpy"))
    return install


def check_stub_numpy(numpy_version: str) -> None:
    """The wheel's Python-backend stub is built for numpy 1.x (nvidia-pytriton 0.7.0 requires numpy < 2); under numpy
    2 it sends small tensors with 0 bytes -- every model would answer wrong or fail with "input byte size mismatch".
    Refuse to start rather than serve that."""
    if int(numpy_version.split(".")[0]) >= 2:
        raise TritonStartError(
            f"numpy {numpy_version} is installed, but the Python backend of nvidia-pytriton's tritonserver needs "
            f"numpy < 2 (under numpy 2 its models' tensors arrive empty); install numpy<2 in this environment: "
            f"{sys.executable} -m pip install 'numpy<2'"
        )


def _prepare_backends(install: Installation, scratch: Path) -> Path:
    """A backends directory whose python/ holds the stub for this Python.

    The wheel ships stubs for several Python versions but none in place. Install ours next to the
    backend when site-packages is writable (atomic rename, so concurrent servers never see half a
    file); otherwise use a private copy of the (small) backends directory.
    """
    target = install.backends_dir / "python" / "triton_python_backend_stub"
    if target.exists() and filecmp.cmp(target, install.stub, shallow=False):
        return install.backends_dir
    if os.access(target.parent, os.W_OK):
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copy2(install.stub, tmp)
        os.replace(tmp, target)
        return install.backends_dir
    private = scratch / "backends"
    shutil.copytree(install.backends_dir, private, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(install.stub, private / "python" / "triton_python_backend_stub")
    return private


def _python_libdir() -> str | None:
    """The directory holding this interpreter's shared libpython, if it was built with one."""
    libdir = sysconfig.get_config_var("LIBDIR")
    library = sysconfig.get_config_var("LDLIBRARY") or ""
    if libdir and library.endswith(".so") and (Path(libdir) / library).exists():
        return str(libdir)
    return None


def free_port() -> int:
    """A TCP port free on the loopback address right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on the loopback address right now. All are held until the last is found:
    probed one at a time, the kernel may hand out a port it has just released again (Triton then refuses to
    start: "cannot listen to HTTP requests and metrics requests at the same address and port")."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(sock.getsockname()[1])
        return ports


def _answers(url: str) -> bool:
    """Whether ``url`` answers 200 now (a refused or failing connection is not an error while a server starts)."""
    with (
        contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError, OSError),
        urllib.request.urlopen(url, timeout=2) as response,
    ):
        return response.status == 200
    return False


@dataclass(frozen=True)
class Endpoints:
    """Where a running server listens (all loopback)."""

    host: str
    http_port: int
    grpc_port: int
    metrics_port: int

    @property
    def http(self) -> str:
        """``host:port`` as ``tritonclient.http.InferenceServerClient(url=...)`` takes it."""
        return f"{self.host}:{self.http_port}"

    @property
    def grpc(self) -> str:
        """``host:port`` as ``tritonclient.grpc.InferenceServerClient(url=...)`` takes it."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def http_url(self) -> str:
        return f"http://{self.http}"


class TritonServer:
    """One tritonserver process on a model repository.

    ``model_control_mode``: ``"none"`` loads every model at start (the production setting);
    ``"explicit"`` loads only ``load_models`` (or none) and lets the caller load/unload through the API.
    ``strict_readiness`` makes ``/v2/health/ready`` report ready only when every model is ready.
    ``exit_timeout_s`` is how long Triton drains in-flight requests and open client connections on
    SIGTERM: close your clients before ``stop()`` or the stop waits the whole timeout. 15 s by default:
    the LLM models take about 5 s to unload, and a shorter drain ends Triton with exit code 1.
    The server log goes to ``log_path`` (a file in ``work_dir``; without one, a temp dir that a clean
    ``stop()`` removes).
    """

    def __init__(
        self,
        model_repository: Path | str,
        *,
        model_control_mode: Literal["none", "explicit"] = "none",
        load_models: Sequence[str] = (),
        strict_readiness: bool = True,
        exit_timeout_s: int = 15,
        startup_timeout_s: float = 120.0,
        work_dir: Path | str | None = None,
        log_verbose: int = 0,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        if model_control_mode not in ("none", "explicit"):
            # poll mode reloads whatever appears in the repository: never what we run.
            raise ValueError(f"model_control_mode {model_control_mode!r}: use 'none' or 'explicit'")
        if load_models and model_control_mode != "explicit":
            raise ValueError("load_models needs model_control_mode='explicit'")
        self.model_control_mode = model_control_mode
        self.load_models = tuple(load_models)
        self.strict_readiness = strict_readiness
        self.exit_timeout_s = exit_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.log_verbose = log_verbose
        self.extra_args = tuple(extra_args)
        self.extra_env = dict(env or {})
        self._own_work_dir = work_dir is None
        self._work_dir = Path(work_dir) if work_dir is not None else None
        self._process: subprocess.Popen[bytes] | None = None
        self._endpoints: Endpoints | None = None
        self._log_file = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Endpoints:
        """Start the server and block until it is ready; raise TritonStartError with the log tail if not."""
        if self._process is not None:
            raise RuntimeError("server already started; call stop() first")
        if not self.model_repository.is_dir():
            raise TritonStartError(f"model repository {self.model_repository} is not a directory; render one first")
        install = find_installation()
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="tritonserver-"))
        self._work_dir.mkdir(parents=True, exist_ok=True)
        backends = _prepare_backends(install, self._work_dir)
        # Ports are probed then handed to Triton; another process could take one in between, so a
        # bind failure gets one retry on fresh ports.
        for attempt in (1, 2):
            endpoints = Endpoints(LOOPBACK, *free_ports(3))
            self._launch(install, backends, endpoints)
            try:
                self._wait_ready(endpoints)
            except TritonStartError:
                address_in_use = "address already in use" in self.log_tail(200).lower()
                self._terminate()
                if attempt == 1 and address_in_use:
                    continue
                raise
            self._endpoints = endpoints
            return endpoints
        raise AssertionError("unreachable")

    def stop(self) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL of its process group after the drain timeout).

        Returns Triton's exit code, or None if it was not running. Safe to call twice.
        """
        code = self._terminate()
        self._endpoints = None
        if self._own_work_dir and self._work_dir is not None and code is not None:
            # A temp work dir (log, private backends copy) goes with a clean stop; pass work_dir to keep
            # the log. After a failed start it stays: the error message points at its log.
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
        return code

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- facts -----------------------------------------------------------------------------------

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise RuntimeError("server is not running; call start() first")
        return self._endpoints

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def log_path(self) -> Path:
        if self._work_dir is None:
            raise RuntimeError("server was never started")
        return self._work_dir / "tritonserver.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_errors(self, limit: int = 20) -> str:
        """Error lines of the log (model load failures, stub errors): Triton prints its long option
        table after them, so a plain tail can miss the cause."""
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return ""
        hits = [
            line[:2000]
            for line in text.splitlines()
            if re.match(r"E\d{4} ", line) or "failed to load" in line or "Failed to initialize Python stub" in line
        ]
        # CPU-only machines always log these; they are noise, not causes.
        noise = ("CudaDriverHelper has not been initialized", "Failed to initialize NVML", "DCGM")
        causes = [h for h in hits if not any(n in h for n in noise)]
        return "\n".join(causes[-limit:])

    def _failure_report(self) -> str:
        errors = self.log_errors()
        report = f"log {self.log_path}:\n"
        if errors:
            report += f"errors:\n{errors}\n"
        return report + f"last lines:\n{self.log_tail(15)}"

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # --- internals -------------------------------------------------------------------------------

    def _command(self, install: Installation, backends: Path, endpoints: Endpoints) -> list[str]:
        cmd = [
            str(install.server_binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            f"--model-control-mode={self.model_control_mode}",
            f"--strict-readiness={str(self.strict_readiness).lower()}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            "--exit-on-error=true",
            f"--http-address={endpoints.host}",
            f"--http-port={endpoints.http_port}",
            f"--grpc-address={endpoints.host}",
            f"--grpc-port={endpoints.grpc_port}",
            f"--metrics-address={endpoints.host}",
            f"--metrics-port={endpoints.metrics_port}",
            "--allow-metrics=true",
            "--allow-cpu-metrics=true",
            f"--log-verbose={self.log_verbose}",
        ]
        cmd += [f"--load-model={name}" for name in self.load_models]
        return cmd + list(self.extra_args)

    def _environment(self, install: Installation, endpoints: Endpoints) -> dict[str, str]:
        env = dict(os.environ)
        # Where the models reach this server's own gRPC endpoint (the voice pipeline streams its stages through it).
        env["TRITON_OWN_GRPC_ENDPOINT"] = endpoints.grpc
        env.update(self.extra_env)
        libs = [str(install.library_dir)]
        python_libdir = _python_libdir()
        if python_libdir is not None:
            # The stub links libpython3.x dynamically; without this it may bind the distribution's
            # libpython of another patch release, whose C API does not match this interpreter's
            # extension modules (seen: "_ssl...so: undefined symbol: _PyModule_Add").
            libs.insert(0, python_libdir)
        if env.get("LD_LIBRARY_PATH"):
            libs.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = ":".join(libs)
        # The stub starts the interpreter it finds first on PATH; make it this environment's.
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        return env

    def _launch(self, install: Installation, backends: Path, endpoints: Endpoints) -> None:
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 -- owned by the process lifetime
        self._process = subprocess.Popen(
            self._command(install, backends, endpoints),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._environment(install, endpoints),
            cwd=self._work_dir,
            # Own process group: the Python backend stubs are Triton's children and must go with it.
            start_new_session=True,
        )

    def _wait_ready(self, endpoints: Endpoints) -> None:
        """Until the server is ready and every endpoint answers: Triton starts the metrics endpoint after HTTP
        (``StartEndpoints`` in its main.cc), so a ready HTTP health check alone can precede a refused /metrics."""
        deadline = time.monotonic() + self.startup_timeout_s
        urls = (f"{endpoints.http_url}/v2/health/ready", endpoints.metrics_url)
        while time.monotonic() < deadline:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise TritonStartError(
                    f"tritonserver exited with code {code} before becoming ready "
                    f"(repository {self.model_repository}); {self._failure_report()}"
                )
            if all(_answers(url) for url in urls):
                return
            time.sleep(0.25)
        raise TritonStartError(
            f"tritonserver not ready after {self.startup_timeout_s:.0f}s (repository {self.model_repository}); "
            f"raise startup_timeout_s if models load slowly; {self._failure_report()}"
        )

    def _terminate(self) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=self.exit_timeout_s + 10)
            # Triton gone or hung: anything left in its group (stubs) is ours to end.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            return process.wait(timeout=10)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
