"""Engine-build Jobs fit the nodes of the pool they target: what the provider submits at run time (the real
Job manifest from the Engine's runner input) requests no more than every instance type of that pool offers
after the kubelet, eviction and DaemonSet reserves; a pool too small for its builds fails the preview."""

from __future__ import annotations

import pytest

from engines.runners.kubernetes_job import JobSettings, build_job
from engines.spec import EngineSpec
from platform_spec import gpus
from platform_spec.quantities import quantity
from platform_spec.settings import settings_from_pulumi_config
from tests.pulumi_harness import run_stack, stack_config

ENGINE = "pulumi-python:dynamic/engines:Engine"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_build_job_fits_every_node_of_its_pool(stack):
    run = run_stack(stack)
    run.raise_error()
    settings = settings_from_pulumi_config(stack_config(stack))
    pools = {p.name: p for p in settings.gpu_pools}
    engines = [r for r in run.registrations if r.type == ENGINE]
    assert engines
    for engine in engines:
        runner = engine.inputs["runner"]
        job = build_job(EngineSpec.from_inputs(engine.inputs), "0" * 64, JobSettings.from_input(runner), "s3://b/")
        pod = job["spec"]["template"]["spec"]
        requests = pod["containers"][0]["resources"]["requests"]
        pool = pools[runner["pool"]]
        assert pod["nodeSelector"]["platform.io/pool"] == pool.name
        for instance_type in pool.instance_types:
            node = gpus.allocatable(instance_type, pool.disk_size_gib)
            where = f"{engine.name} on {instance_type}"
            assert quantity(requests["cpu"]) * 1000 <= node.cpu_millicores, where
            assert quantity(requests["memory"]) <= node.memory_mib * 2**20, where
            assert quantity(requests["ephemeral-storage"]) <= node.ephemeral_gib * 2**30, where
            assert int(requests["nvidia.com/gpu"]) <= node.gpus, where


def test_a_pool_too_small_for_its_builds_fails_before_any_resource():
    run = run_stack("prod", overrides={"triton-platform:gpuPools[0].instanceTypes": ["g6e.xlarge"],
                                       "triton-platform:gpuPools[0].gpuSku": "l40s"})  # fmt: skip
    assert run.error is not None and run.registrations == []
    message = str(run.error)
    assert "engine 'llm_chat' on GPU pool 'llm' needs 4 CPU, 48 GiB memory, 80 GiB scratch to build" in message
    assert "g6e.xlarge (3.42 CPU, 29.5 GiB memory" in message and "largest node of the pool" in message
    assert "Use larger instanceTypes or a larger diskSizeGib for gpuPools[llm]" in message


def test_allocatable_follows_the_eks_reservations():
    node = gpus.allocatable("g6.xlarge", 150)
    # 4 vCPU: 60 + 10 + 2 x 5 = 80 m kubelet reserve, 500 m DaemonSets
    assert node.cpu_millicores == 4000 - 80 - 500
    assert node.memory_mib == 16 * 1024 - (255 + 11 * 110) - 100 - 1024
    assert node.ephemeral_gib == 135 - 40 and node.gpus == 1
    with pytest.raises(KeyError, match="add its shape"):
        gpus.allocatable("g7.xlarge", 100)
