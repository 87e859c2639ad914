"""Run a build as a Kubernetes Job on the target GPU pool, poll it, and clean it up.

The Job provisions one pod on a node of the engine's GPU pool (node selector on the pool and GPU SKU
labels, toleration of the GPU taint, one ``nvidia.com/gpu``), in the platform's engine-builder image for
the engine's runtime (``docker/engine-builder``: the NVIDIA image whose TensorRT / TensorRT-LLM matches the
serving Triton image, ``platform_spec.versions``, with the build's Python dependencies baked in), referenced
by digest: the pod installs nothing at run time. The pod runs ``engines.job_main`` from a
ConfigMap-mounted code zip and publishes to the store itself, with the service account's Pod
Identity/IRSA role. The runner polls with progress messages, returns the published metadata,
raises with the pod's log on failure and with a clear message on timeout, and always deletes the
Job and its ConfigMap.

Settings (``JobSettings``, from the Engine's ``runner`` input): namespace, service account, pool
name, builder image (``repo@sha256:...``), timeout, poll interval, backoff limit, TTL, CPU/memory/scratch requests.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from engines.builders.base import BuildError
from engines.runners.code_bundle import code_bundle
from engines.spec import EngineSpec, content_key
from engines.store.base import ArtifactMetadata, ArtifactStore
from platform_spec import versions

GPU_SKU_LABEL = "platform.io/gpu-sku"
POOL_LABEL = "platform.io/pool"
ENGINE_KEY_LABEL = "platform.io/engine-key"
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
BUILD_INPUT_DIR = "/opt/engine-build"
SCRATCH_DIR = "/scratch"
# Engine-builder image flavour -> the NVIDIA image it extends (docker/engine-builder, built by infra.images).
BUILD_IMAGE_BASES = {"tensorrt": versions.TENSORRT_BUILD_IMAGE, "tensorrt-llm": versions.TRITON_TRTLLM_IMAGE}
_DIGEST_REFERENCE = re.compile(r"^[^@\s:]+(:\d+)?(/[^@\s:]+)*@sha256:[0-9a-f]{64}$")


# A high UID no image user has (checkov CKV_K8S_40: avoid the host's and the image's low UIDs).
BUILD_UID = 10001


class JobTimeout(BuildError):
    """The Job did not finish in time; it has been deleted."""


@dataclass(frozen=True)
class JobSettings:
    pool: str
    namespace: str = "engine-builds"
    service_account: str = "engine-builder"
    image: str | None = None
    timeout_seconds: int = 3600
    poll_seconds: float = 15.0
    backoff_limit: int = 1
    ttl_seconds_after_finished: int = 3600
    cpu: str = "8"
    memory: str = "64Gi"
    scratch: str = "200Gi"
    gpus: int = 1
    aws_region: str | None = None
    extra_labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_input(cls, raw: Mapping[str, Any]) -> JobSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known - {"kind", "kubeconfig"})
        if unknown:
            raise ValueError(f"runner keys {unknown} are unknown; known keys are {sorted(known)}")
        values = {k: v for k, v in raw.items() if k in known and v is not None}
        for name in ("timeout_seconds", "backoff_limit", "ttl_seconds_after_finished", "gpus"):
            if name in values:
                values[name] = int(values[name])
        if "poll_seconds" in values:
            values["poll_seconds"] = float(values["poll_seconds"])
        if not values.get("pool"):
            raise ValueError("runner.pool is required for the kubernetes runner: the GPU pool to build on")
        return cls(**values)


def build_image_flavour(spec: EngineSpec) -> str:
    """The engine-builder flavour matching the serving release: TensorRT's for plans, the Triton TRT-LLM one
    for LLM artifacts."""
    return "tensorrt-llm" if spec.target.runtime == "tensorrt_llm" else "tensorrt"


def _builder_image(spec: EngineSpec, settings: JobSettings) -> str:
    flavour = build_image_flavour(spec)
    if not settings.image:
        raise BuildError(
            f"{spec.model}: runner.image is not set; engine builds run in the platform's {flavour!r} engine-builder "
            "image (docker/engine-builder, pushed by infra.images), given as repo@sha256:<digest>"
        )
    if not _DIGEST_REFERENCE.match(settings.image):
        raise BuildError(
            f"{spec.model}: runner.image {settings.image!r} is not a repo@sha256:<64 hex> reference; a build must "
            "run exactly the image that was pushed (a tag can move)"
        )
    return settings.image


def job_name(key: str) -> str:
    return f"engine-build-{key[:16]}"


def build_configmap(spec: EngineSpec, key: str, settings: JobSettings, bundle: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": job_name(key), "namespace": settings.namespace, "labels": _labels(spec, key, settings)},
        "data": {"spec.json": json.dumps(spec.to_inputs(), indent=2, sort_keys=True)},
        "binaryData": {"engines.zip": base64.b64encode(bundle).decode()},
    }


def build_job(spec: EngineSpec, key: str, settings: JobSettings, store_uri: str) -> dict[str, Any]:
    if spec.target.gpu_sku is None:
        raise BuildError(f"{spec.model} targets the CPU; the kubernetes runner builds GPU engines only")
    name = job_name(key)
    labels = _labels(spec, key, settings)
    image = _builder_image(spec, settings)
    script = (
        "set -eu\n"
        f"export PYTHONPATH={BUILD_INPUT_DIR}/engines.zip\n"
        f'exec python3 -m engines.job_main --spec {BUILD_INPUT_DIR}/spec.json --store "$ENGINE_STORE_URI" '
        f'--expect-key "$ENGINE_KEY"\n'
    )
    env = [
        {"name": "ENGINE_STORE_URI", "value": store_uri},
        {"name": "ENGINE_KEY", "value": key},
        {"name": "HOME", "value": SCRATCH_DIR},
        {"name": "TMPDIR", "value": SCRATCH_DIR},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if settings.aws_region:
        env.append({"name": "AWS_REGION", "value": settings.aws_region})
    gpu = str(settings.gpus)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": labels},
        "spec": {
            "backoffLimit": settings.backoff_limit,
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            # The cluster enforces the deadline too, so a provider that dies mid-poll leaves no GPU busy.
            "activeDeadlineSeconds": settings.timeout_seconds,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.service_account,
                    "nodeSelector": {GPU_SKU_LABEL: spec.target.gpu_sku, POOL_LABEL: settings.pool},
                    "tolerations": [dict(GPU_TAINT)],
                    # Non-root with a read-only root filesystem: the build writes only to /scratch (HOME, TMPDIR,
                    # its pip target) and reads its code from the ConfigMap; the GPU needs no root. No Kubernetes
                    # API token: S3 credentials come from the Pod Identity agent, not the service account token.
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": BUILD_UID,
                        "runAsGroup": BUILD_UID,
                        "fsGroup": BUILD_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "build",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",  # by digest: a cached copy is the same image
                            "command": ["/bin/bash", "-c", script],
                            "env": env,
                            "resources": {
                                "requests": {
                                    "cpu": settings.cpu,
                                    "memory": settings.memory,
                                    "ephemeral-storage": settings.scratch,
                                    "nvidia.com/gpu": gpu,
                                },
                                # CPU limited too: a build shares its node with serving pods of the pool.
                                "limits": {"cpu": settings.cpu, "memory": settings.memory, "nvidia.com/gpu": gpu},
                            },
                            "securityContext": {
                                "readOnlyRootFilesystem": True,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "build-input", "mountPath": BUILD_INPUT_DIR, "readOnly": True},
                                {"name": "scratch", "mountPath": SCRATCH_DIR},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "build-input", "configMap": {"name": name}},
                        {"name": "scratch", "emptyDir": {"sizeLimit": settings.scratch}},
                    ],
                },
            },
        },
    }


def _labels(spec: EngineSpec, key: str, settings: JobSettings) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "engine-build",
        "app.kubernetes.io/managed-by": "pulumi",
        ENGINE_KEY_LABEL: key[:63],
        POOL_LABEL: settings.pool,
        **settings.extra_labels,
    }


@dataclass
class KubernetesApis:
    """The two API groups the runner uses (real ``kubernetes.client`` objects, or test doubles)."""

    batch: Any
    core: Any


def apis_from_kubeconfig(kubeconfig: str | None) -> KubernetesApis:
    """Clients from an explicit kubeconfig (YAML/JSON text), else ``$KUBECONFIG``/~/.kube, else in-cluster."""
    from kubernetes import client, config

    if kubeconfig:
        import yaml

        api_client = config.new_client_from_config_dict(yaml.safe_load(kubeconfig))
    else:
        try:
            config.load_kube_config()
        except config.ConfigException:
            config.load_incluster_config()
        api_client = client.ApiClient()
    return KubernetesApis(client.BatchV1Api(api_client), client.CoreV1Api(api_client))


class KubernetesJobRunner:
    def __init__(
        self,
        settings: JobSettings,
        store_uri: str,
        apis: KubernetesApis,
        progress: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.settings = settings
        self.store_uri = store_uri
        self.apis = apis
        self.progress = progress or (lambda message: None)
        self.clock = clock
        self.sleep = sleep

    def run(self, spec: EngineSpec, store: ArtifactStore) -> ArtifactMetadata:
        key = content_key(spec)
        name, ns = job_name(key), self.settings.namespace
        self._create(spec, key)
        try:
            self._wait(name, spec)
        finally:
            self._cleanup(name)
        check = store.verify(key)
        if not check.ok:
            raise BuildError(
                f"build Job {ns}/{name} succeeded but {store.uri} holds no intact artifact {key[:16]} "
                f"({check.problem or 'not published'}); check the Job role's write access to the store"
            )
        return check.metadata

    # --- steps ---

    def _create(self, spec: EngineSpec, key: str) -> None:
        from kubernetes.client.exceptions import ApiException

        ns, name = self.settings.namespace, job_name(key)
        configmap = build_configmap(spec, key, self.settings, code_bundle())
        try:
            self.apis.core.create_namespaced_config_map(ns, configmap)
        except ApiException as exc:
            if exc.status != 409:
                raise self._api_error("create the build ConfigMap", name, exc) from exc
            self.apis.core.replace_namespaced_config_map(name, ns, configmap)
        try:
            self.apis.batch.create_namespaced_job(ns, build_job(spec, key, self.settings, self.store_uri))
            self.progress(f"engine {spec.model}: build Job {ns}/{name} created on pool {self.settings.pool}")
        except ApiException as exc:
            if exc.status != 409:
                raise self._api_error("create the build Job", name, exc) from exc
            # A Job for the same key survives from an interrupted run: same inputs, so wait for it.
            self.progress(f"engine {spec.model}: build Job {ns}/{name} already exists; following it")

    def _wait(self, name: str, spec: EngineSpec) -> None:
        ns, started = self.settings.namespace, self.clock()
        deadline = started + self.settings.timeout_seconds
        last = None
        while True:
            job = self.apis.batch.read_namespaced_job_status(name, ns)
            status = job.status
            if (status.succeeded or 0) >= 1:
                self.progress(f"engine {spec.model}: build Job {ns}/{name} succeeded in {self.clock() - started:.0f}s")
                return
            failure = _failure_reason(job, self.settings.backoff_limit)
            if failure:
                raise BuildError(
                    f"build Job {ns}/{name} for {spec.model} failed ({failure}); the pod's log follows",
                    self._pod_logs(name),
                )
            state = self._describe(name, status)
            if self.clock() >= deadline:
                raise JobTimeout(
                    f"build Job {ns}/{name} for {spec.model} did not finish within {self.settings.timeout_seconds}s "
                    f"(last state: {state}); the Job was deleted. If pods stayed Pending, pool "
                    f"{self.settings.pool!r} had no free {spec.target.gpu_sku} GPU; otherwise raise "
                    "runner.timeout_seconds",
                    self._pod_logs(name),
                )
            if state != last:
                self.progress(f"engine {spec.model}: build Job {ns}/{name}: {state} ({self.clock() - started:.0f}s)")
                last = state
            self.sleep(self.settings.poll_seconds)

    def _describe(self, name: str, status: Any) -> str:
        pods = self.apis.core.list_namespaced_pod(self.settings.namespace, label_selector=f"job-name={name}").items
        if not pods:
            return f"no pod yet (active {status.active or 0})"
        parts = []
        for pod in pods:
            detail = pod.status.phase or "Unknown"
            for cs in pod.status.container_statuses or []:
                if cs.state and cs.state.waiting and cs.state.waiting.reason:
                    detail += f"/{cs.state.waiting.reason}"
            for cond in pod.status.conditions or []:
                if cond.type == "PodScheduled" and cond.status == "False" and cond.reason:
                    detail += f"/{cond.reason}"
            parts.append(detail)
        return ", ".join(parts)

    def _pod_logs(self, name: str) -> str:
        from kubernetes.client.exceptions import ApiException

        ns = self.settings.namespace
        try:
            pods = self.apis.core.list_namespaced_pod(ns, label_selector=f"job-name={name}").items
        except ApiException:
            return "(pods could not be listed)"
        chunks = []
        for pod in pods:
            try:
                text = self.apis.core.read_namespaced_pod_log(pod.metadata.name, ns, tail_lines=200)
            except ApiException as exc:
                text = f"(log unavailable: {exc.status} {exc.reason})"
            chunks.append(f"--- pod {pod.metadata.name} ---\n{text}")
        return "\n".join(chunks) or "(no pod was created)"

    def _cleanup(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        ns = self.settings.namespace
        for delete in (
            lambda: self.apis.batch.delete_namespaced_job(name, ns, propagation_policy="Background"),
            lambda: self.apis.core.delete_namespaced_config_map(name, ns),
        ):
            try:
                delete()
            except ApiException as exc:
                if exc.status != 404:
                    self.progress(f"could not delete {ns}/{name} ({exc.status}); its TTL removes it later")

    def _api_error(self, what: str, name: str, exc: Any) -> BuildError:
        hint = {
            403: f"grant the deploying identity create on jobs/configmaps in namespace {self.settings.namespace}",
            404: f"create namespace {self.settings.namespace} first",
        }.get(exc.status, "check the cluster connection")
        return BuildError(f"could not {what} {self.settings.namespace}/{name}: {exc.status} {exc.reason}; {hint}")


def _failure_reason(job: Any, backoff_limit: int) -> str | None:
    status = job.status
    for cond in status.conditions or []:
        if cond.type == "Failed" and cond.status == "True":
            return f"{cond.reason or 'Failed'}: {cond.message or 'no message'}"
    if (status.failed or 0) > backoff_limit:
        return f"{status.failed} failed pods, backoff limit {backoff_limit}"
    return None
