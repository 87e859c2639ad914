"""The one interface every builder implements, and what a build is given.

A builder turns a verified local source into files under ``ctx.output_dir``; it never touches the
store's artifact area (the runner publishes atomically after the build succeeded) and never
decides whether to build (the provider does, from the content key).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engines.onnx_checks import OnnxModelError, load_checked, profile_problems
from engines.spec import EngineSpec, SourceRef
from engines.store.base import ArtifactStore, log_excerpt


class BuildError(RuntimeError):
    """A build that failed; the message says what and how to fix it, ``log`` holds the build log."""

    def __init__(self, message: str, log: str = ""):
        self.log = log
        detail = f"\n--- build log (tail) ---\n{log_excerpt(log, 2000)}" if log else ""
        super().__init__(message + detail)


@dataclass
class BuildLog:
    """Timestamped build log; every line is also passed to ``progress`` (pulumi.log.info in the provider)."""

    progress: Callable[[str], None] | None = None
    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def info(self, message: str) -> None:
        line = f"[{time.monotonic() - self.started:8.2f}s] {message}"
        self.lines.append(line)
        if self.progress is not None:
            self.progress(message)

    def extend(self, text: str) -> None:
        """Raw tool output (trtexec, TensorRT's logger): kept, not echoed line by line."""
        self.lines.extend(text.splitlines())

    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")


@dataclass
class BuildContext:
    workdir: Path  # scratch space, removed after the build
    output_dir: Path  # the artifact's files go here; published only if the build returns
    log: BuildLog
    store: ArtifactStore  # for timing caches; artifacts are published by the runner, not the builder
    fetch: Callable[[SourceRef, str], Path]  # fetch-and-verify another pinned input (calibration data)


@dataclass(frozen=True)
class BuildOutput:
    primary: str  # the file the runtime loads, relative to output_dir ("." for a checkpoint tree)
    versions: dict[str, str]


class Builder(Protocol):
    name: str
    code_version: str

    def build(self, spec: EngineSpec, source: Path, ctx: BuildContext) -> BuildOutput: ...


def load_onnx_source(spec: EngineSpec, source: Path, log: BuildLog) -> Any:
    """The ONNX source of a build, loaded and checked against the spec's input profiles before any
    builder spends time on it; BuildError (with the log so far) naming the model and what does not fit."""
    try:
        model = load_checked(source)
    except OnnxModelError as exc:
        raise BuildError(f"source of {spec.model} ({spec.source.uri}): {exc}", log.text()) from None
    problems = profile_problems(model, spec.settings.profiles, Path(spec.source.uri).name)
    if problems:
        raise BuildError(f"profiles of {spec.model} do not fit its ONNX model: " + "; ".join(problems), log.text())
    return model
