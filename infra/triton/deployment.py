"""Kubernetes objects that run Triton: the namespace, the service account, and per GPU pool a
Deployment, its Services and its PodDisruptionBudget.

Settings that drive them: ``TritonSettings`` (namespace, per-pool sizes and replica bounds, drain
timing, surge, zone spread, internal NLB) and the stack's ``gpuPools`` (name, role, GPU SKU: the
node selector pins a pool's pods to nodes carrying the GPU its engines were built for).

Every function here returns plain Kubernetes objects (dicts; Pulumi Inputs allowed inside) so the
manifests are checked by schema validation and by tests without a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from infra.monitoring.monitors import TRITON_METRICS_ARGS
from infra.scheduling import GPU_TOLERATION, gpu_pool_selector
from infra.triton import probes
from infra.triton.network_policy import GRPC_PORT, HTTP_PORT, METRICS_PORT, NAME_LABEL, TRITON_NAME
from platform_spec import versions
from platform_spec.serving import PoolServing, TritonSettings
from platform_spec.settings import GpuPool

POOL_LABEL = "platform.io/pool"
SERVICE_ACCOUNT = "triton"
CONTAINER = "tritonserver"
# Restricted Pod Security: Triton needs no privilege (the device plugin hands the GPU to the pod).
POD_SECURITY_LEVEL = "restricted"
# Not the images' triton-server (uid 1000, which is ec2-user on the nodes' AL2023 AMI): a UID no image or host
# user has. Triton needs no passwd entry: HOME, caches and the downloaded repository are under SCRATCH_MOUNT.
TRITON_UID = 10001
SCRATCH_MOUNT = "/tmp"  # Triton downloads the S3 repository here; caches live here too

# Internal NLB through the AWS cloud provider's Service controller (no extra controller needed).
INTERNAL_NLB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": "true",
}


def pool_resource_name(pool: GpuPool) -> str:
    return f"triton-{pool.name}"


def selector_labels(pool: GpuPool) -> dict[str, str]:
    return {NAME_LABEL: TRITON_NAME, POOL_LABEL: pool.name}


def common_labels(pool: GpuPool) -> dict[str, str]:
    return {
        **selector_labels(pool),
        "app.kubernetes.io/instance": pool_resource_name(pool),
        "app.kubernetes.io/component": "inference-server",
        "app.kubernetes.io/part-of": "triton-platform",
        "app.kubernetes.io/version": versions.RUNTIMES[pool.role].triton,
        "platform.io/role": pool.role,
    }


def namespace_manifest(settings: TritonSettings) -> dict[str, Any]:
    level, version = POD_SECURITY_LEVEL, f"v{versions.KUBERNETES_VERSION}"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": settings.namespace,
            "labels": {
                "app.kubernetes.io/part-of": "triton-platform",
                "pod-security.kubernetes.io/enforce": level,
                "pod-security.kubernetes.io/enforce-version": version,
                "pod-security.kubernetes.io/audit": level,
                "pod-security.kubernetes.io/audit-version": version,
                "pod-security.kubernetes.io/warn": level,
                "pod-security.kubernetes.io/warn-version": version,
            },
        },
    }


def service_account_manifest(settings: TritonSettings, role_arn: pulumi.Input[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": SERVICE_ACCOUNT,
            "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/part-of": "triton-platform"},
            # IRSA: EKS's webhook mounts a web-identity token for this role (see identity.py for why).
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
        },
        # Triton never calls the Kubernetes API; the IRSA token is a separate projected volume.
        "automountServiceAccountToken": False,
    }


# Triton's administrative APIs (log settings, tracing, shared-memory registration) answer only requests that
# carry this header with the stack's admin key; inference, health, metadata and the repository index stay open
# to the callers the NetworkPolicy admits. The key reaches the args through Kubernetes' $(VAR) expansion from
# a Secret, so it is in no pod spec.
RESTRICTED_APIS = "logging,trace,shared-memory"
ADMIN_KEY_HEADER = "triton-admin-key"
ADMIN_KEY_ENV = "TRITON_ADMIN_KEY"
ADMIN_KEY_SECRET = "triton-admin-key"


def triton_args(
    repository_uri: pulumi.Input[str], serving: PoolServing, *, metrics: bool = True
) -> list[pulumi.Input[str]]:
    """tritonserver's command line for one pool (a test starts the real server with these flags)."""
    args: list[pulumi.Input[str]] = [
        pulumi.Output.concat("--model-repository=", repository_uri),
        # Load exactly the published version once, at start; never poll the repository.
        "--model-control-mode=none",
        # The rendered configs are complete and validated: no backend may rewrite them.
        "--disable-auto-complete-config",
        "--strict-readiness=true",
        "--exit-on-error=true",
        f"--exit-timeout-secs={serving.exit_timeout_s}",
        f"--http-port={HTTP_PORT}",
        f"--grpc-port={GRPC_PORT}",
        f"--metrics-port={METRICS_PORT}",
        "--log-format=ISO8601",
        f"--http-restricted-api={RESTRICTED_APIS}:{ADMIN_KEY_HEADER}=$({ADMIN_KEY_ENV})",
        f"--grpc-restricted-protocol={RESTRICTED_APIS}:{ADMIN_KEY_HEADER}=$({ADMIN_KEY_ENV})",
    ]
    if metrics:
        args += [
            "--allow-metrics=true",
            "--allow-gpu-metrics=true",
            "--allow-cpu-metrics=true",
            # What the monitoring rules and dashboards read (latency summaries, first-response histograms).
            *TRITON_METRICS_ARGS,
        ]
    return args


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": TRITON_UID,
        "runAsGroup": TRITON_UID,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": TRITON_UID,
        "runAsGroup": TRITON_UID,
        "fsGroup": TRITON_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources(serving: PoolServing) -> dict[str, Any]:
    # Requests == limits (Guaranteed QoS). The memory-backed /dev/shm counts against the memory limit.
    amounts = {
        "cpu": serving.cpu,
        "memory": serving.memory,
        "ephemeral-storage": serving.ephemeral_storage,
        "nvidia.com/gpu": str(serving.gpus),
    }
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _topology_spread(pool: GpuPool, settings: TritonSettings) -> list[dict[str, Any]]:
    selector = {"matchLabels": selector_labels(pool)}
    zone = "DoNotSchedule" if settings.zone_spread == "hard" else "ScheduleAnyway"
    return [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": zone,
            "labelSelector": selector,
            "matchLabelKeys": ["pod-template-hash"],
        },
        {
            # Soft: a p5 node has 8 GPUs, and a pending replica is worse than two on one node.
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": selector,
            "matchLabelKeys": ["pod-template-hash"],
        },
    ]


def deployment_manifest(
    *,
    pool: GpuPool,
    settings: TritonSettings,
    image: pulumi.Input[str],
    repository_uri: pulumi.Input[str],
    repository_version: pulumi.Input[str],
    roles: Sequence[str],
    region: str,
    grpc_endpoints: Mapping[str, str],
) -> dict[str, Any]:
    """The Deployment of one GPU pool."""
    serving = settings.pool(pool.name)
    budget = probes.startup_budget_s(roles, serving)
    labels = common_labels(pool)
    max_surge = settings.max_surge
    container = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["tritonserver"],
        "args": triton_args(repository_uri, serving),
        "env": [
            # Triton's S3 client needs the bucket's region; IRSA supplies the credentials.
            {"name": "AWS_DEFAULT_REGION", "value": region},
            {"name": "AWS_REGION", "value": region},
            # Read-only root filesystem: every cache goes to the scratch volume.
            {"name": "HOME", "value": SCRATCH_MOUNT},
            {"name": "XDG_CACHE_HOME", "value": f"{SCRATCH_MOUNT}/cache"},
            {"name": "TMPDIR", "value": SCRATCH_MOUNT},
            # Weights come from the published repository only, never from a model hub at run time.
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "TRANSFORMERS_OFFLINE", "value": "1"},
            # The pool label of the voice pipeline's per-turn metrics (model_repo _common/turn_metrics.py).
            {"name": "PLATFORM_POOL", "value": pool.name},
            # Where the other pools answer (the voice pipeline reaches the LLM pool over gRPC).
            {"name": "TRITON_GRPC_ENDPOINTS", "value": json.dumps(dict(grpc_endpoints), sort_keys=True)},
            # Where the models reach this pod's own server (the voice pipeline streams its LLM and TTS through it).
            {"name": "TRITON_OWN_GRPC_ENDPOINT", "value": f"127.0.0.1:{GRPC_PORT}"},
            # The admin key of the restricted APIs (triton_args); from a Secret, expanded into the args.
            {"name": ADMIN_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": ADMIN_KEY_SECRET, "key": "key"}}},
        ],
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": _resources(serving),
        "startupProbe": probes.startup_probe(budget),
        "readinessProbe": probes.readiness_probe(),
        "livenessProbe": probes.liveness_probe(),
        # Stay in the endpoints while Services and the NLB stop routing to this pod, then SIGTERM.
        "lifecycle": {"preStop": {"sleep": {"seconds": settings.pre_stop_sleep_s}}},
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "scratch", "mountPath": SCRATCH_MOUNT},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": pool_resource_name(pool), "namespace": settings.namespace, "labels": labels},
        "spec": {
            # KEDA's HPA owns the replica count after creation (the resource ignores later drift).
            "replicas": serving.min_replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector_labels(pool)},
            # A rollout may take a full model load per pod; only then is it "stuck".
            "progressDeadlineSeconds": budget + 600,
            "minReadySeconds": 10,
            "strategy": {
                "type": "RollingUpdate",
                # No spare GPU: replace one pod at a time (no surge pod that could never schedule).
                "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": 0 if max_surge > 0 else 1},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"platform.io/repository-version": repository_version},
                },
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "nodeSelector": gpu_pool_selector(pool),
                    "tolerations": [dict(GPU_TOLERATION)],
                    "topologySpreadConstraints": _topology_spread(pool, settings),
                    "terminationGracePeriodSeconds": probes.termination_grace_period_s(
                        serving, settings.pre_stop_sleep_s
                    ),
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": [
                        {"name": "scratch", "emptyDir": {"sizeLimit": serving.ephemeral_storage}},
                        # The Python backend passes tensors through shared memory; 64 MiB default is too small.
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": serving.shm}},
                    ],
                },
            },
        },
    }


def service_manifest(pool: GpuPool, settings: TritonSettings) -> dict[str, Any]:
    """ClusterIP Service: http, grpc and metrics (the ServiceMonitor selects its labels and ``metrics``)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": pool_resource_name(pool), "namespace": settings.namespace, "labels": common_labels(pool)},
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(pool),
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP",
                 "appProtocol": "kubernetes.io/h2c"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP",
                 "appProtocol": "http"},
            ],  # fmt: skip
        },
    }


def nlb_service_manifest(pool: GpuPool, settings: TritonSettings) -> dict[str, Any]:
    """Internal NLB for callers outside the cluster: http and grpc only (metrics stay in-cluster).

    Its name label differs from Triton's so the ServiceMonitor never scrapes a pod twice.
    """
    labels = {**common_labels(pool), NAME_LABEL: "triton-nlb"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"{pool_resource_name(pool)}-nlb",
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": dict(INTERNAL_NLB_ANNOTATIONS),
        },
        "spec": {
            "type": "LoadBalancer",
            "selector": selector_labels(pool),
            "loadBalancerSourceRanges": list(settings.nlb_source_cidrs),
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
            ],
        },
    }


def pdb_manifest(pool: GpuPool, settings: TritonSettings) -> dict[str, Any]:
    """At most one pod of a pool voluntarily down at a time (drains and node scale-down wait)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": pool_resource_name(pool), "namespace": settings.namespace, "labels": common_labels(pool)},
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(pool)},
            # A pod that is not ready serves nobody: never let it block a node drain.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def service_dns(pool: GpuPool, settings: TritonSettings) -> str:
    return f"{pool_resource_name(pool)}.{settings.namespace}.svc.cluster.local"
