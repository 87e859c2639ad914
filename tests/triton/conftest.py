"""Fixtures: the foundation plus the Triton platform, run once per stack under Pulumi's mocks.

The program is the foundation's ``build_platform`` and ``infra.triton.wiring.build_triton`` (the
call the program makes), with the stack's own config. Engines are given as references to
content-addressed store paths, one per engine the rendered repository needs, as the engine
declarations would hand them over; the mocks answer the Docker build with a registry digest and
the ECR token lookup with a token.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from infra.program import build_platform, settings_from_engine, stack_outputs
from infra.stack_plan import gpu_specs, plan_stack
from infra.triton.publication import EngineRef, render_gpu_repository, required_engines
from infra.triton.wiring import build_triton
from model_repo import catalog
from tests.pulumi_harness import stack_config
from tools.offline import PlatformMocks, run_program

ENGINE_STORE_ROOT = "engine-store/"


def fake_digest(image_name: str) -> str:
    return "sha256:" + hashlib.sha256(image_name.encode()).hexdigest()


def _docker_image(mocks, args):
    name = args.inputs["imageName"]
    # pulumi-docker reports repo_digest as repo:tag@sha256:... (digest of the pushed manifest)
    return f"{name}-id", {"repoDigest": f"{name}@{fake_digest(name)}", "baseImageName": name}


def triton_mocks(region: str) -> PlatformMocks:
    # The ECR token lookup is answered by PlatformMocks' own invoke handlers.
    return PlatformMocks(region, resources={"docker:index/image:Image": _docker_image})


def engine_key(pool: str, engine: str) -> str:
    return hashlib.sha256(f"{pool}/{engine}".encode()).hexdigest()


def run_triton_stack(stack: str, build_root: Path, *, config_changes=None, drop_engines=()):
    config = stack_config(stack)
    config.update(config_changes or {})

    def program():
        settings = settings_from_engine()
        platform = build_platform(settings)
        rendered = render_gpu_repository(gpu_specs(catalog.select(settings.models)), build_root=build_root)
        engines = {}
        for pool, engine in required_engines(rendered, settings.gpu_pools):
            if (pool, engine) in drop_engines:
                continue
            key = engine_key(pool, engine)
            uri = platform.stores.bucket_name.apply(
                lambda b, k=key: f"s3://{b}/{ENGINE_STORE_ROOT}engines/{k}/artifact/"
            )
            engines.setdefault(pool, {})[engine] = EngineRef(key=key, uri=uri)
        triton = build_triton(platform, plan_stack(settings), engines=engines, build_root=build_root)
        program.component = triton
        return {**stack_outputs(platform), **triton.outputs}

    run = run_program(config, stack=stack, program=program, mocks=triton_mocks(str(config["aws:region"])))
    run.component = getattr(program, "component", None)
    return run


@pytest.fixture(scope="session")
def triton_build_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("triton-repository")


@pytest.fixture(scope="session")
def dev_triton(triton_build_root):
    run = run_triton_stack("dev", triton_build_root)
    run.raise_error()
    return run


@pytest.fixture(scope="session")
def prod_triton(triton_build_root):
    run = run_triton_stack("prod", triton_build_root)
    run.raise_error()
    return run


@pytest.fixture(params=["dev", "prod"])
def triton_run(request):
    return request.getfixturevalue(f"{request.param}_triton")


@pytest.fixture(autouse=True)
def _current_event_loop():
    """Building Pulumi Outputs outside a program run (manifest helpers) needs a current event loop; a test
    that ran ``asyncio.run`` before leaves none, so each test here starts with one."""
    import asyncio

    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    yield
