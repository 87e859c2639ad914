"""Test harness: run the whole Pulumi program for a stack under Pulumi's mocks and query what it
declared.

    from tests.pulumi_harness import program_fixture, run_stack

    dev_stack = program_fixture("dev")               # in a conftest: a session fixture, program run once

    def test_something(dev_stack):
        group = dev_stack.one("aws:eks/nodeGroup:NodeGroup", "triton-platform-dev-gpu-llm")
        assert group.inputs["amiType"] == "AL2023_x86_64_NVIDIA"

    run = run_stack("prod", overrides={"triton-platform:network.azCount": 2})   # a variant
    assert run.error is not None and run.registrations == []

The program is the real ``__main__.py`` with the config of ``Pulumi.<stack>.yaml``, handed over
the way the engine does (structured values JSON-encoded), with ``preview=False`` so every
``apply`` runs. Recorded inputs use the engine's (camelCase) property names. The mocks and the
recording live in ``tools.offline`` (the plan command uses them too); this module adds config
overrides, fixtures and queries.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from platform_spec.settings import read_stack_config
from tools.offline import STAND_IN_ACCESS, PlatformMocks, ProgramRun, Registration, apply_overrides, run_program

__all__ = [
    "PlatformMocks",
    "ProgramRun",
    "Registration",
    "apply_overrides",
    "children_of",
    "is_taggable",
    "kubernetes_manifest",
    "kubernetes_objects",
    "program_fixture",
    "run_stack",
    "stack_config",
]

# Engine sources (model checkpoints, exported ONNX) cannot be fetched and pinned here; tests run the
# program against a lock of synthetic digests, clearly labelled as such in the file itself.
SYNTHETIC_SOURCES_LOCK = "tests/fixtures/sources.lock.synthetic.json"


def stack_config(stack: str) -> dict[str, Any]:
    """The config of ``Pulumi.<stack>.yaml`` (plain YAML values) with the values only a team can set filled by
    stand-ins: the synthetic source lock, and the mocks' deploy role and a deployer CIDR (STAND_IN_ACCESS)."""
    config = apply_overrides(read_stack_config(stack), STAND_IN_ACCESS)
    engines = dict(config.get("triton-platform:engines") or {})
    config["triton-platform:engines"] = {**engines, "sourcesLock": SYNTHETIC_SOURCES_LOCK}
    return config


def run_stack(
    stack: str,
    *,
    overrides: Mapping[str, Any] | None = None,
    remove: Iterable[str] = (),
    mocks: PlatformMocks | None = None,
    program=None,
) -> ProgramRun:
    """Run the program for ``stack`` (optionally with config changes). Errors land in ``run.error``."""
    config = apply_overrides(stack_config(stack), overrides, remove)
    kwargs = {"program": program} if program is not None else {}
    return run_program(config, stack=stack, mocks=mocks, **kwargs)


def program_fixture(stack: str, **kwargs: Any):
    """A session-scoped fixture that runs the program for ``stack`` once and fails on any error."""

    @pytest.fixture(scope="session")
    def _run() -> ProgramRun:
        run = run_stack(stack, **kwargs)
        run.raise_error()
        return run

    return _run


# --- queries -------------------------------------------------------------------------------------


def children_of(run: ProgramRun, parent: Registration) -> list[Registration]:
    return [r for r in run.registrations if r.parent == parent.urn]


def kubernetes_objects(run: ProgramRun) -> list[Registration]:
    """Kubernetes objects the program declares itself (not rendered by Helm, not providers)."""
    return [
        r
        for r in run.registrations
        if r.type.startswith("kubernetes:") and not r.type.startswith("kubernetes:helm.sh/")
    ]


def kubernetes_manifest(registration: Registration) -> dict[str, Any]:
    """The object as the API server would receive it, from the recorded inputs."""
    return {k: v for k, v in registration.inputs.items() if v is not None}


@functools.cache
def is_taggable(type_token: str) -> bool:
    """Whether an ``aws:`` resource type accepts ``tags`` (read from the pulumi_aws class itself)."""
    match = re.fullmatch(r"aws:([\w]+)/\w+:(\w+)", type_token)
    if match is None:
        return False
    module, class_name = match.groups()
    package = importlib.import_module("pulumi_aws" if module == "index" else f"pulumi_aws.{module}")
    resource_class = getattr(package, class_name)
    return "tags" in inspect.signature(resource_class._internal_init).parameters
