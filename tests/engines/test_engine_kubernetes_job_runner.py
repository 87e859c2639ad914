"""The Kubernetes Job runner: schema-valid manifests, and polling against a stand-in API server.

No cluster exists here, so ``FakeCluster`` plays the API server with the real ``kubernetes.client``
model classes and exceptions. Its pod either runs the Job's real command (the shipped code zip,
``engines.job_main``) in a subprocess, or follows a scripted sequence of states.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
from kubernetes.client import (
    V1ContainerState,
    V1ContainerStateWaiting,
    V1ContainerStatus,
    V1Job,
    V1JobCondition,
    V1JobStatus,
    V1ObjectMeta,
    V1Pod,
    V1PodCondition,
    V1PodList,
    V1PodStatus,
)
from kubernetes.client.exceptions import ApiException

from engines.builders import spec_for
from engines.builders.base import BuildError
from engines.runners.code_bundle import code_bundle
from engines.runners.kubernetes_job import (
    BUILD_IMAGE_BASES,
    BUILD_INPUT_DIR,
    GPU_SKU_LABEL,
    POOL_LABEL,
    SCRATCH_DIR,
    JobSettings,
    JobTimeout,
    KubernetesApis,
    KubernetesJobRunner,
    build_configmap,
    build_image_flavour,
    build_job,
    job_name,
)
from engines.spec import BuilderSettings, SourceRef, Target, content_key
from engines.store import BuildRecord, LocalStore
from infra import scheduling
from platform_spec import versions
from platform_spec.digests import file_sha256
from tests.engines.conftest import mlp_profile, write_mlp

BUILDER = f"123456789012.dkr.ecr.us-west-2.amazonaws.com/triton-platform@sha256:{'b' * 64}"
SETTINGS = JobSettings(pool="speech", image=BUILDER, timeout_seconds=600, poll_seconds=10, aws_region="us-west-2")


def gpu_spec(onnx: Path, sku: str = "l4"):
    return spec_for(
        "asr_encoder",
        "tensorrt",
        SourceRef(onnx.as_uri(), file_sha256(onnx), "onnx"),
        Target.for_gpu(sku),
        BuilderSettings(precision="fp16", profiles=mlp_profile()),
    )


@pytest.fixture
def spec(tmp_path):
    return gpu_spec(write_mlp(tmp_path / "encoder.onnx"))


def test_manifests_are_schema_valid_for_kubernetes_1_34(spec):
    key = content_key(spec)
    job = build_job(spec, key, SETTINGS, "s3://bucket/")
    configmap = build_configmap(spec, key, SETTINGS, code_bundle())
    assert kubernetes_validate.validate(job, "1.34.0", strict=True) == "1.34"
    assert kubernetes_validate.validate(configmap, "1.34.0", strict=True) == "1.34"


def test_job_targets_the_pool_gpu_and_runs_the_builder_image_by_digest(spec):
    key = content_key(spec)
    job = build_job(spec, key, SETTINGS, "s3://bucket/")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == BUILDER and build_image_flavour(spec) == "tensorrt"
    # The builder image extends the TensorRT image of the serving release, so their TensorRT is the same.
    assert BUILD_IMAGE_BASES["tensorrt"].rsplit(":", 1)[1] == versions.TRITON_IMAGE.rsplit(":", 1)[1]
    assert "pip" not in container["command"][-1], "the pod installs nothing at run time"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["limits"]["cpu"] == container["resources"]["requests"]["cpu"]
    toleration = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    assert pod["tolerations"] == [toleration]
    assert pod["nodeSelector"] == {"platform.io/gpu-sku": "l4", "platform.io/pool": "speech"}
    assert pod["serviceAccountName"] == "engine-builder" and pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 1 and job["spec"]["ttlSecondsAfterFinished"] == 3600
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["metadata"]["name"] == job_name(key) == f"engine-build-{key[:16]}"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["ENGINE_KEY"] == key and env["ENGINE_STORE_URI"] == "s3://bucket/" and env["AWS_REGION"] == "us-west-2"
    # Same label keys the node groups carry (infra.scheduling), and a toleration matching their taint.
    assert (GPU_SKU_LABEL, POOL_LABEL) == (scheduling.GPU_SKU_LABEL, scheduling.POOL_LABEL)
    assert pod["tolerations"][0]["key"] == scheduling.GPU_TAINT_KEY
    assert pod["tolerations"][0]["value"] == scheduling.GPU_TAINT_VALUE


def test_llm_builds_use_the_triton_trtllm_image(tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    from engines.spec import Calibration, LlmSettings
    from platform_spec.digests import tree_digest

    llm = spec_for(
        "llm_chat",
        "tensorrt_llm",
        SourceRef(checkpoint.as_uri(), tree_digest(checkpoint), "hf_checkpoint"),
        Target.for_gpu("h100", "tensorrt_llm"),
        BuilderSettings(precision="bf16", llm=LlmSettings()),
    )
    assert build_image_flavour(llm) == "tensorrt-llm"
    assert BUILD_IMAGE_BASES["tensorrt-llm"] == versions.TRITON_TRTLLM_IMAGE
    job = build_job(llm, content_key(llm), JobSettings(pool="llm", image=BUILDER), "s3://b/")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == BUILDER
    assert Calibration  # imported for the LLM spec family; nothing else to check here


def test_a_build_without_a_digest_pinned_builder_image_is_refused(spec):
    with pytest.raises(BuildError, match="runner.image is not set; engine builds run in the platform's 'tensorrt'"):
        build_job(spec, "0" * 64, JobSettings(pool="speech"), "s3://b/")
    with pytest.raises(BuildError, match="is not a repo@sha256:<64 hex> reference; a build must run exactly"):
        build_job(spec, "0" * 64, JobSettings(pool="speech", image=versions.TENSORRT_BUILD_IMAGE), "s3://b/")


def test_cpu_specs_are_refused(mlp_onnx):
    from tests.engines.conftest import cpu_spec

    with pytest.raises(BuildError, match="targets the CPU"):
        build_job(cpu_spec(mlp_onnx), "0" * 64, SETTINGS, "s3://b/")


def test_runner_settings_reject_unknown_keys():
    with pytest.raises(ValueError, match=r"runner keys \['gpu_count'\] are unknown"):
        JobSettings.from_input({"kind": "kubernetes", "pool": "llm", "gpu_count": 2})
    s = JobSettings.from_input({"kind": "kubernetes", "pool": "llm", "timeout_seconds": 7200.0})
    assert s.timeout_seconds == 7200 and isinstance(s.timeout_seconds, int)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeCluster:
    """The batch/v1 and v1 calls the runner makes, with the kubernetes client's own model types."""

    def __init__(self, states=None, pod_phase="Running", waiting=None, unschedulable=False, run_pod=None):
        self.jobs: dict[str, dict] = {}
        self.configmaps: dict[str, dict] = {}
        self.deleted: list[str] = []
        self.states = list(states or [])
        self.pod_phase, self.waiting, self.unschedulable = pod_phase, waiting, unschedulable
        self.run_pod = run_pod
        self.pod_log = "build log line 1\nbuild log line 2"

    # batch/v1
    def create_namespaced_job(self, namespace, body):
        name = body["metadata"]["name"]
        if name in self.jobs:
            raise ApiException(status=409, reason="AlreadyExists")
        self.jobs[name] = body
        if self.run_pod is not None:
            code, self.pod_log = self.run_pod(body, self.configmaps[name])
            self.states = [{"succeeded": 1} if code == 0 else {"failed": 2}]

    def read_namespaced_job_status(self, name, namespace):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        conditions = None
        if state.get("failed"):
            conditions = [V1JobCondition(type="Failed", status="True", reason="BackoffLimitExceeded", message="2 pods")]
        return V1Job(metadata=V1ObjectMeta(name=name), status=V1JobStatus(conditions=conditions, **state))

    def delete_namespaced_job(self, name, namespace, propagation_policy=None):
        assert propagation_policy == "Background"
        if self.jobs.pop(name, None) is None:
            raise ApiException(status=404, reason="NotFound")
        self.deleted.append(f"job/{name}")

    # v1
    def create_namespaced_config_map(self, namespace, body):
        name = body["metadata"]["name"]
        if name in self.configmaps:
            raise ApiException(status=409, reason="AlreadyExists")
        self.configmaps[name] = body

    def replace_namespaced_config_map(self, name, namespace, body):
        self.configmaps[name] = body

    def delete_namespaced_config_map(self, name, namespace):
        if self.configmaps.pop(name, None) is None:
            raise ApiException(status=404, reason="NotFound")
        self.deleted.append(f"configmap/{name}")

    def list_namespaced_pod(self, namespace, label_selector):
        name = label_selector.split("=", 1)[1]
        statuses = None
        if self.waiting:
            waiting = V1ContainerState(waiting=V1ContainerStateWaiting(reason=self.waiting))
            statuses = [
                V1ContainerStatus(name="build", image="x", image_id="", ready=False, restart_count=0, state=waiting)
            ]
        conditions = None
        if self.unschedulable:
            conditions = [V1PodCondition(type="PodScheduled", status="False", reason="Unschedulable")]
        pod = V1Pod(
            metadata=V1ObjectMeta(name=f"{name}-abcde"),
            status=V1PodStatus(phase=self.pod_phase, container_statuses=statuses, conditions=conditions),
        )
        return V1PodList(items=[pod])

    def read_namespaced_pod_log(self, name, namespace, tail_lines=None):
        assert tail_lines == 200
        return self.pod_log


def runner_for(cluster: FakeCluster, clock: FakeClock, messages: list[str], settings=SETTINGS):
    apis = KubernetesApis(batch=cluster, core=cluster)
    return KubernetesJobRunner(settings, "s3://unused/", apis, messages.append, clock, clock.sleep)


def test_success_returns_the_published_artifact_and_removes_the_job(spec, store_dir, tmp_path):
    store = LocalStore(store_dir)
    key = content_key(spec)

    def pod_publishes(job, configmap):
        # Stand-in for the GPU pod's build (TensorRT cannot run here): it publishes a plan file.
        out = tmp_path / "pod-output"
        out.mkdir()
        (out / "model.plan").write_bytes(b"plan bytes")
        store.publish(BuildRecord(key, "tensorrt", "model.plan", {}, {"tensorrt": "10.13.3.9"}, 42.0), out)
        return 0, "built"

    cluster = FakeCluster(run_pod=pod_publishes)
    messages: list[str] = []
    meta = runner_for(cluster, FakeClock(), messages).run(spec, store)
    assert meta.key == key and meta.build_seconds == 42.0
    assert sorted(cluster.deleted) == [f"configmap/{job_name(key)}", f"job/{job_name(key)}"]
    assert any("created on pool speech" in m for m in messages) and any("succeeded" in m for m in messages)


def test_progress_while_pending_then_timeout_with_a_clear_message(spec, store_dir):
    cluster = FakeCluster(states=[{"active": 1}], pod_phase="Pending", unschedulable=True)
    clock, messages = FakeClock(), []
    with pytest.raises(JobTimeout) as err:
        runner_for(cluster, clock, messages).run(spec, LocalStore(store_dir))
    text = str(err.value)
    assert "did not finish within 600s" in text and "Pending/Unschedulable" in text
    assert "pool 'speech' had no free l4 GPU" in text and "build log line 2" in text
    assert clock.now == 600 and messages[-1].startswith("engine asr_encoder: build Job engine-builds/")
    assert cluster.jobs == {} and cluster.configmaps == {}  # deleted on timeout too


def test_failure_shows_the_pod_log_from_the_real_job_command(spec, store_dir, tmp_path):
    """The pod runs the Job's own command line: code from the ConfigMap zip, spec from the ConfigMap."""

    def run_real_command(job, configmap):
        mount, scratch = tmp_path / "build-input", tmp_path / "scratch"
        mount.mkdir()
        scratch.mkdir()
        (mount / "spec.json").write_text(configmap["data"]["spec.json"])
        (mount / "engines.zip").write_bytes(base64.b64decode(configmap["binaryData"]["engines.zip"]))
        container = job["spec"]["template"]["spec"]["containers"][0]
        script = container["command"][2].replace(BUILD_INPUT_DIR, str(mount)).replace(SCRATCH_DIR, str(scratch))
        env = {e["name"]: e["value"].replace(SCRATCH_DIR, str(scratch)) for e in container["env"]}
        env["ENGINE_STORE_URI"] = store_dir.as_uri()
        # The image's python3 has the pinned packages (so nothing is pip-installed); no repo on the path.
        env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
        result = subprocess.run(
            ["/bin/bash", "-c", script], cwd=scratch, env=env, capture_output=True, text=True, timeout=120
        )
        return result.returncode, result.stdout + result.stderr

    cluster = FakeCluster(run_pod=run_real_command)
    with pytest.raises(BuildError) as err:
        runner_for(cluster, FakeClock(), []).run(spec, LocalStore(store_dir))
    text = str(err.value)
    assert "failed (BackoffLimitExceeded: 2 pods)" in text
    # The zip imported, the spec parsed and hashed to the same key, the source was verified, and the
    # TensorRT builder stopped where this machine differs from the GPU image: no TensorRT.
    assert "verified (sha256" in text
    assert "the tensorrt builder needs the TensorRT Python package" in text
    assert cluster.jobs == {} and LocalStore(store_dir).keys() == []


def test_an_existing_job_for_the_same_key_is_followed(spec, store_dir, tmp_path):
    store = LocalStore(store_dir)
    key = content_key(spec)
    cluster = FakeCluster(states=[{"active": 1}, {"active": 1}, {"succeeded": 1}], waiting="ContainerCreating")
    cluster.jobs[job_name(key)] = {"left": "by an interrupted run"}
    out = tmp_path / "o"
    out.mkdir()
    (out / "model.plan").write_bytes(b"p")
    store.publish(BuildRecord(key, "tensorrt", "model.plan", {}, {}, 1.0), out)
    messages: list[str] = []
    meta = runner_for(cluster, FakeClock(), messages).run(spec, store)
    assert meta.key == key
    assert any("already exists; following it" in m for m in messages)
    assert any("Running/ContainerCreating" in m for m in messages)


def test_success_without_an_artifact_is_an_error(spec, store_dir):
    cluster = FakeCluster(states=[{"succeeded": 1}])
    with pytest.raises(BuildError, match="succeeded but .* holds no intact artifact"):
        runner_for(cluster, FakeClock(), []).run(spec, LocalStore(store_dir))


def test_api_errors_name_the_fix(spec, store_dir):
    class Forbidden(FakeCluster):
        def create_namespaced_config_map(self, namespace, body):
            raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(BuildError, match="403 Forbidden; grant the deploying identity create on jobs/configmaps"):
        runner_for(Forbidden(), FakeClock(), []).run(spec, LocalStore(store_dir))


def test_code_bundle_is_deterministic_and_small():
    first, second = code_bundle(), code_bundle()
    assert first == second and len(first) < 300_000
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert "engines/job_main.py" in names and "platform_spec/versions.py" in names
    assert "platform_spec/settings.py" not in names
    assert os.path.basename(names[0])  # non-empty entries


def test_build_pods_meet_the_restricted_pod_security_standard(spec):
    """What `pod-security.kubernetes.io/enforce: restricted` on the engine-builds namespace admits: non-root,
    RuntimeDefault seccomp, no privilege escalation, every capability dropped; and no writable root filesystem
    (the build writes to /scratch only) and no Kubernetes API token."""
    job = build_job(spec, content_key(spec), SETTINGS, "s3://b/")
    spec = job["spec"]["template"]["spec"]
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] >= 10000
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"} and spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/scratch"}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HOME"] == env["TMPDIR"] == "/scratch"
