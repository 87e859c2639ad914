"""Where a deployed stack's Triton listens, read from ``pulumi stack output --json``.

The outputs contract (``docs/outputs.md``, ``outputsVersion`` 1.x) gives ``tritonEndpoints`` (GPU pool ->
``{http, grpc, metrics?}``) and ``servedModels`` (GPU pool -> ``[{name, versions}]``). :func:`parse` turns that JSON
(from a file, stdin or the Pulumi CLI) into one :class:`PoolEndpoint` per pool, each with the models
that pool serves, so the smoke and load tools can call a deployed stack exactly as they call the
local server.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENDPOINTS_KEY = "tritonEndpoints"
MODELS_KEY = "servedModels"
VERSION_KEY = "outputsVersion"
SUPPORTED_MAJOR = 1
_GRPC = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")
_HTTP = re.compile(r"^https?://[^\s/]+")


class StackOutputError(ValueError):
    """The stack outputs are missing, malformed or of an unknown contract version; names key, value and fix."""


@dataclass(frozen=True)
class PoolEndpoint:
    """One Triton deployment (a GPU pool): its endpoints and the models it serves (empty: ask the server)."""

    pool: str
    grpc: str  # host:port
    http: str  # http(s)://host:port
    metrics: str | None = None
    models: tuple[str, ...] = field(default_factory=tuple)


def parse(document: str | Mapping[str, Any], source: str = "stack outputs") -> list[PoolEndpoint]:
    """Pools and their endpoints from ``pulumi stack output --json`` (text or already-decoded mapping)."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            raise StackOutputError(
                f"{source}: not JSON ({exc.msg} at line {exc.lineno}); pass the output of `pulumi stack output --json`"
            ) from None
    if not isinstance(document, Mapping):
        raise StackOutputError(f"{source}: expected a JSON object of outputs, got {type(document).__name__}")
    version = document.get(VERSION_KEY)
    if version is not None:
        major = str(version).split(".", 1)[0]
        if major != str(SUPPORTED_MAJOR):
            raise StackOutputError(
                f"{source}: {VERSION_KEY} = {version!r}; this tool reads contract major {SUPPORTED_MAJOR}; "
                "use the tool version that matches the stack"
            )
    endpoints = document.get(ENDPOINTS_KEY)
    if endpoints is None:
        raise StackOutputError(
            f"{source}: no {ENDPOINTS_KEY!r} output (outputs present: {sorted(document)}); deploy Triton first "
            "(pulumi up), or point the tool at a server with --url host:port"
        )
    if not isinstance(endpoints, Mapping) or not endpoints:
        raise StackOutputError(f"{source}: {ENDPOINTS_KEY} = {endpoints!r}; expected pool -> {{http, grpc}}")
    served = document.get(MODELS_KEY) or {}
    if not isinstance(served, Mapping):
        raise StackOutputError(f"{source}: {MODELS_KEY} = {served!r}; expected pool -> [{{name, versions}}]")
    pools = []
    for pool, value in sorted(endpoints.items()):
        where = f"{source}: {ENDPOINTS_KEY}.{pool}"
        if not isinstance(value, Mapping):
            raise StackOutputError(f"{where} = {value!r}; expected {{http, grpc, metrics?}}")
        grpc, http = value.get("grpc"), value.get("http")
        if not isinstance(grpc, str) or not _GRPC.match(grpc):
            raise StackOutputError(f"{where}.grpc = {grpc!r}; expected host:port, e.g. triton-llm.triton.svc:8001")
        if not isinstance(http, str) or not _HTTP.match(http):
            raise StackOutputError(f"{where}.http = {http!r}; expected http(s)://host:port")
        metrics = value.get("metrics")
        if metrics is not None and (not isinstance(metrics, str) or not _HTTP.match(metrics)):
            raise StackOutputError(f"{where}.metrics = {metrics!r}; expected http(s)://host:port[/metrics]")
        models = _pool_models(served.get(pool, []), f"{source}: {MODELS_KEY}.{pool}")
        pools.append(PoolEndpoint(str(pool), grpc, http, metrics, models))
    return pools


def _pool_models(entries: Any, where: str) -> tuple[str, ...]:
    """Model names of one pool's ``servedModels`` entry (absent: ask the server for its models)."""
    if not isinstance(entries, list) or not all(
        isinstance(e, Mapping) and isinstance(e.get("name"), str) for e in entries
    ):
        raise StackOutputError(f"{where} = {entries!r}; expected a list of {{name, versions}}")
    return tuple(e["name"] for e in entries)


def read(path: str) -> str:
    """The JSON text of ``path`` (``-`` reads stdin)."""
    if path == "-":
        return sys.stdin.read()
    file = Path(path)
    if not file.is_file():
        raise StackOutputError(f"--stack-outputs {path}: no such file; write it with `pulumi stack output --json`")
    return file.read_text()


def from_pulumi(stack: str, cwd: Path | None = None) -> str:
    """Run ``pulumi stack output --json --stack <stack>`` and return its text."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise StackOutputError(
            "the pulumi CLI is not on PATH; install it, or save the outputs elsewhere with "
            "`pulumi stack output --json > outputs.json` and pass --stack-outputs outputs.json"
        )
    done = subprocess.run(
        [pulumi, "stack", "output", "--json", "--stack", stack], capture_output=True, text=True, cwd=cwd, timeout=120
    )
    if done.returncode != 0:
        raise StackOutputError(f"`pulumi stack output --json --stack {stack}` failed: {done.stderr.strip()}")
    return done.stdout
