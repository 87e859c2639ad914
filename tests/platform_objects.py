"""Every Kubernetes object a stack puts on its cluster, as the API server would receive it: the objects the
program declares itself, the objects each Helm release renders with exactly the values the program passes (the
real Helm engine), and the engine-build Jobs the Engine provider submits at run time (the runner's own
``build_job``). The scheduling check, the chart tests and the security scan all read this one collection."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from engines.runners.kubernetes_job import JobSettings, build_job
from engines.spec import EngineSpec
from tests.helm_render import render_releases
from tests.pulumi_harness import ProgramRun, kubernetes_manifest, kubernetes_objects, run_stack

ENGINE = "pulumi-python:dynamic/engines:Engine"


@dataclass(frozen=True)
class StackObjects:
    run: ProgramRun
    program: dict[str, dict[str, Any]]  # registration name -> manifest
    charts: dict[str, list[dict[str, Any]]]  # release name -> rendered objects
    build_jobs: dict[str, dict[str, Any]]  # engine resource name -> the Job the provider submits

    def everything(self) -> list[tuple[str, dict[str, Any]]]:
        """(where it comes from, object) for every object, program first."""
        out = [(f"program {name}", m) for name, m in self.program.items()]
        out += [(f"chart {release}", o) for release, objects in self.charts.items() for o in objects]
        out += [(f"build {name}", job) for name, job in self.build_jobs.items()]
        return out


def _integral_numbers(value: Any) -> Any:
    """Pulumi records every number as a float (10001.0); the API server receives JSON and reads 10001 as int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_numbers(v) for v in value]
    return value


@functools.cache
def stack_objects(stack: str) -> StackObjects:
    run = run_stack(stack)
    run.raise_error()
    program = {}
    for registration in kubernetes_objects(run):
        if registration.custom:
            manifest = _integral_numbers(kubernetes_manifest(registration))
            group_version, kind = registration.type.split(":")[1:]
            manifest.setdefault("kind", kind)
            manifest.setdefault("apiVersion", group_version.removeprefix("core/"))
            program[registration.name] = manifest
    charts = {name: objects for name, (_, objects) in render_releases(run).items()}
    build_jobs = {
        engine.name: build_job(
            EngineSpec.from_inputs(engine.inputs), "0" * 64, JobSettings.from_input(engine.inputs["runner"]), "s3://b/"
        )  # fmt: skip
        for engine in run.of_type(ENGINE)
    }
    return StackObjects(run, program, charts, build_jobs)
