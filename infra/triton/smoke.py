"""The post-deploy smoke Job: after the Deployments are rolled out, call every served model once.

The Job runs ``python3 -m local.smoke`` (``local/smoke.py``, shipped in the serving image)
against each pool's Service over gRPC. pulumi-kubernetes waits
for a Job to complete and fails the update as soon as it reports ``Failed``, so a model that is not
ready or answers wrong fails ``pulumi up`` with the smoke output in the Job's log (and in the pod's
termination message). The Job is replaced whenever what it checks changes (image, repository
version, model list) and re-run on the next ``up`` after a failure (``pulumi.com/replaceUnready``).

It runs on the speech pool's nodes, tolerating the GPU taint but asking for no GPU: the serving image
is already cached there, so the check starts in seconds instead of pulling ~10 GB onto a system node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from infra.scheduling import GPU_TOLERATION, gpu_pool_selector
from infra.triton.deployment import container_security_context, pod_security_context
from infra.triton.network_policy import GRPC_PORT, NAME_LABEL, SMOKE_NAME
from platform_spec.serving import TritonSettings
from platform_spec.settings import GpuPool

JOB_NAME = "triton-smoke"
# The one smoke checker (local/smoke.py), shipped in the serving image with the two modules it imports.
SMOKE_MODULE = "local.smoke"
WAIT_S = 300  # the Deployments are rolled out already; this only absorbs endpoint propagation
REQUEST_TIMEOUT_S = 120


def smoke_command(targets: Mapping[str, Sequence[str]]) -> list[str]:
    """``targets``: gRPC endpoint (host:port) -> models to check there."""
    command = ["python3", "-m", SMOKE_MODULE, "--wait", str(WAIT_S), "--timeout", str(REQUEST_TIMEOUT_S)]
    for endpoint, models in sorted(targets.items()):
        command += ["--check", f"{endpoint}={','.join(models)}"]
    return command


def deadline_s(targets: Mapping[str, Sequence[str]]) -> int:
    models = sum(len(m) for m in targets.values())
    return WAIT_S + models * REQUEST_TIMEOUT_S + 60


def smoke_job_manifest(
    *,
    settings: TritonSettings,
    image: pulumi.Input[str],
    run_on: GpuPool,
    targets: Mapping[str, Sequence[str]],
    repository_version: pulumi.Input[str],
) -> dict[str, Any]:
    if not targets or not all(targets.values()):
        raise ValueError(f"smoke Job needs at least one model per endpoint, got {dict(targets)}")
    labels = {NAME_LABEL: SMOKE_NAME, "app.kubernetes.io/part-of": "triton-platform"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": JOB_NAME,
            "namespace": settings.namespace,
            "labels": labels,
            # A failed check is re-run (replaced) by the next `pulumi up` instead of awaited again.
            "annotations": {"pulumi.com/replaceUnready": "true", "platform.io/repository-version": repository_version},
        },
        "spec": {
            # One retry absorbs a transient network blip; a wrong model fails twice and stops there.
            "backoffLimit": 1,
            "activeDeadlineSeconds": deadline_s(targets),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "nodeSelector": gpu_pool_selector(run_on),
                    "tolerations": [dict(GPU_TOLERATION)],
                    "securityContext": pod_security_context(),
                    "containers": [
                        {
                            "name": "smoke",
                            "image": image,
                            "command": smoke_command(targets),
                            "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}],
                            "resources": {
                                # Small: it shares a GPU node with Triton pods sized to the node.
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"cpu": "1", "memory": "512Mi"},
                            },
                            "securityContext": container_security_context(),
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                        }
                    ],
                },
            },
        },
    }


def grpc_endpoint(service_dns: str) -> str:
    return f"{service_dns}:{GRPC_PORT}"
