"""The platform's guardrails as pure functions over what the Pulumi engine sees.

Every rule reads a resource's type token and its input properties exactly as the engine registers them:
camelCase names from the pulumi-aws 7.x and pulumi-kubernetes 4.x schemas (``metadataOptions.httpTokens``,
``spec.template.spec.containers[].startupProbe``), Helm values as written. A rule returns the list of
violations it found, each a sentence that names the offending property, the value and the fix; an empty
list means compliant.

This module imports nothing from ``pulumi_policy`` on purpose: the pack's ``__main__.py`` adapts these
functions to the Policy SDK (which lives in its own virtualenv, ``policy/.venv``), while the project's
test suite calls them directly with synthetic arguments and with the resources the program registers
under Pulumi mocks.

During ``pulumi preview`` some inputs are not known yet (an image digest built in the same update, a
bucket id). The adapter replaces them with ``UNKNOWN``; a rule never reports a violation on a value it
cannot see, it checks it on the next run, when the value is known.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class _Unknown:
    """A value the engine does not know yet (preview)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Resource:
    """One registered resource: what a stack-level rule sees.

    ``property_dependencies`` maps an input name to the URNs it was computed from (how a bucket's
    companion resources are tied to the bucket during preview, when the bucket's id is not known).
    """

    type: str
    props: Mapping[str, Any]
    urn: str = ""
    name: str = ""
    id: str | None = None
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """Facts about the stack a rule may need.

    ``environment``: "dev" or "prod" (from the policy config, else the stack config
    ``triton-platform:environment``, else the stack name). ``allowed_env_names``: environment variable
    names exempted from the plain-secret rule (policy config ``allowedNames``).
    """

    environment: str | None = None
    allowed_env_names: frozenset[str] = frozenset()


ResourceCheck = Callable[[str, Mapping[str, Any], Context], list[str]]
StackCheck = Callable[[Sequence[Resource], Context], list[tuple[str, str]]]


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    check: ResourceCheck


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    check: StackCheck


@dataclass(frozen=True)
class Violation:
    rule: str
    urn: str
    message: str


# --- type tokens -------------------------------------------------------------------------------

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
EC2_INSTANCE = "aws:ec2/instance:Instance"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
S3_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
S3_ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
S3_VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2")
S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
HELM_CHARTS = ("kubernetes:helm.sh/v3:Chart", "kubernetes:helm.sh/v4:Chart")

# Kubernetes kinds whose pod template lives at spec.template.spec.
_TEMPLATED_WORKLOADS = {
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:apps/v1:ReplicaSet",
    "kubernetes:batch/v1:Job",
}
_POD = "kubernetes:core/v1:Pod"
_CRON_JOB = "kubernetes:batch/v1:CronJob"
# Long-running kinds: where a Triton server is expected to run (Jobs have no readiness to speak of).
_SERVING_WORKLOADS = {
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    _POD,
}

# GPU instance families (EC2 accelerated computing with NVIDIA GPUs). A test checks this covers every
# family that platform_spec/gpus.py maps to a GPU SKU, so the two lists cannot drift apart.
GPU_INSTANCE_FAMILIES = frozenset(
    {"g4dn", "g5", "g5g", "g6", "g6e", "g6f", "gr6", "gr6f", "g7e", "p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en",
     "p6-b200", "p6-b300", "p6e-gb200"}
)
_GPU_AMI_MARKERS = ("NVIDIA", "GPU")
GPU_TAINT_KEY = "nvidia.com/gpu"
_BLOCKING_TAINT_EFFECTS = {"NO_SCHEDULE", "NO_EXECUTE"}

_DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}$")
# Name segments that mark a credential. Matched per segment (split on _ - .), so TOKENIZER_DIR or
# KEYCLOAK_URL are not flagged while HF_TOKEN, DB_PASSWORD and AWS_SECRET_ACCESS_KEY are.
_SECRET_NAME_SEGMENTS = {"PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "APIKEY", "CREDENTIAL", "CREDENTIALS"}
_KMS_ALGORITHMS = {"aws:kms", "aws:kms:dsse"}


# --- small readers -----------------------------------------------------------------------------


def _get(obj: Any, *path: str | int) -> Any:
    """Follow a path through dicts/lists; None when a step is missing, UNKNOWN when a step is unknown."""
    current = obj
    for step in path:
        if current is UNKNOWN:
            return UNKNOWN
        if isinstance(step, int):
            if not isinstance(current, Sequence) or isinstance(current, str) or step >= len(current):
                return None
            current = current[step]
        else:
            if not isinstance(current, Mapping):
                return None
            current = current.get(step)
    return current


def _as_list(value: Any) -> list[Any]:
    if value is None or value is UNKNOWN:
        return []
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return [value]


def _truthy(value: Any) -> bool:
    """Booleans as Helm values and config strings write them."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return value is True or (isinstance(value, int) and value == 1)


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


# --- 1. IMDSv2 with hop limit 1 ------------------------------------------------------------------


def check_imdsv2(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """Launch templates (and instances) require IMDSv2 session tokens and a PUT hop limit of 1.

    Hop limit 1 keeps the instance role's credentials out of reach of pods (a pod's network namespace
    is one hop further away). A managed node group without a launch template gets EKS's default
    template (hop limit 2), so a node group must reference one of ours.
    """
    if resource_type == EKS_NODE_GROUP:
        template = props.get("launchTemplate")
        if template is None:
            return [
                "launchTemplate is not set, so EKS applies its default launch template (IMDS hop limit 2, "
                "reachable from pods); attach a launch template with metadataOptions httpTokens='required' "
                "and httpPutResponseHopLimit=1"
            ]
        return []
    if resource_type not in (LAUNCH_TEMPLATE, EC2_INSTANCE):
        return []
    options = props.get("metadataOptions")
    if options is UNKNOWN:
        return []
    if not isinstance(options, Mapping):
        return [
            "metadataOptions is not set (IMDSv1 stays enabled); set metadataOptions "
            "{httpTokens: 'required', httpPutResponseHopLimit: 1}"
        ]
    problems = []
    tokens = options.get("httpTokens")
    if tokens is not UNKNOWN and tokens != "required":
        problems.append(f"metadataOptions.httpTokens is {tokens!r}; set it to 'required' (IMDSv2 only)")
    hops = options.get("httpPutResponseHopLimit")
    if hops is not UNKNOWN and hops != 1:
        problems.append(
            f"metadataOptions.httpPutResponseHopLimit is {hops!r}; set it to 1 so pods cannot reach the node's "
            "instance credentials"
        )
    if options.get("httpEndpoint") == "disabled":
        # Nodes need IMDS (nodeadm, the VPC CNI); disabling it is a broken node, not a safer one.
        problems.append("metadataOptions.httpEndpoint is 'disabled'; EKS nodes need IMDS, set it to 'enabled'")
    return problems


# --- 2. GPU node groups are tainted --------------------------------------------------------------


def instance_family(instance_type: str) -> str:
    return instance_type.split(".", 1)[0].lower()


def is_gpu_node_group(props: Mapping[str, Any]) -> bool:
    ami = props.get("amiType")
    if isinstance(ami, str) and any(marker in ami.upper() for marker in _GPU_AMI_MARKERS):
        return True
    types = [t for t in _as_list(props.get("instanceTypes")) if isinstance(t, str)]
    if any(instance_family(t) in GPU_INSTANCE_FAMILIES for t in types):
        return True
    labels = props.get("labels")
    return isinstance(labels, Mapping) and _is_true(labels.get("nvidia.com/gpu.present"))


def check_gpu_taint(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """GPU managed node groups carry the taint nvidia.com/gpu:NoSchedule.

    Without it any pod (add-ons, monitoring) lands on a GPU node and the expensive nodes never scale
    down; with it only pods that tolerate the taint (Triton, the engine builds) are scheduled there.
    """
    if resource_type != EKS_NODE_GROUP or not is_gpu_node_group(props):
        return []
    taints = props.get("taints")
    if taints is UNKNOWN:
        return []
    for taint in _as_list(taints):
        if not isinstance(taint, Mapping):
            continue
        if taint.get("key") == GPU_TAINT_KEY and (
            taint.get("effect") in _BLOCKING_TAINT_EFFECTS or taint.get("effect") is UNKNOWN
        ):
            return []
    found = [
        f"{t.get('key')}:{t.get('effect')}" for t in _as_list(taints) if isinstance(t, Mapping)
    ]
    return [
        f"GPU node group (amiType {props.get('amiType')!r}, instanceTypes {props.get('instanceTypes')!r}) has "
        f"taints {found or 'none'}; add taints [{{key: '{GPU_TAINT_KEY}', value: 'true', effect: 'NO_SCHEDULE'}}]"
    ]


# --- 3. S3: encrypted with KMS, versioned, public access blocked -------------------------------------


def _kms_rules(rules: Any) -> list[str]:
    """Problems with a list of server-side encryption rules (empty when SSE-KMS is the default)."""
    entries = _as_list(rules)
    if not entries:
        return ["no server-side encryption rule"]
    for rule in entries:
        algorithm = _get(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
        if algorithm is UNKNOWN or algorithm in _KMS_ALGORITHMS:
            return []
    algorithms = [_get(r, "applyServerSideEncryptionByDefault", "sseAlgorithm") for r in entries]
    return [f"sseAlgorithm is {algorithms}; use 'aws:kms' with the platform's KMS key (kmsMasterKeyId)"]


_PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def check_s3_settings(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """Each S3 setting resource, on its own, says SSE-KMS / Enabled / all four public-access flags true."""
    if resource_type in S3_ENCRYPTION:
        return [f"server-side encryption: {p}" for p in _kms_rules(props.get("rules"))]
    if resource_type in S3_VERSIONING:
        status = _get(props, "versioningConfiguration", "status")
        if status is UNKNOWN or status == "Enabled":
            return []
        return [f"versioningConfiguration.status is {status!r}; set it to 'Enabled'"]
    if resource_type == S3_PUBLIC_ACCESS_BLOCK:
        off = [flag for flag in _PUBLIC_ACCESS_FLAGS if props.get(flag) is not UNKNOWN and props.get(flag) is not True]
        if off:
            return [f"{', '.join(off)} not true; set all of {', '.join(_PUBLIC_ACCESS_FLAGS)} to true"]
        return []
    if resource_type in S3_BUCKETS:
        problems = []
        inline_sse = props.get("serverSideEncryptionConfiguration")
        if isinstance(inline_sse, Mapping):
            problems += [f"serverSideEncryptionConfiguration: {p}" for p in _kms_rules(inline_sse.get("rule"))]
        inline_versioning = props.get("versioning")
        if isinstance(inline_versioning, Mapping) and inline_versioning.get("enabled") is False:
            problems.append("versioning.enabled is false; enable versioning")
        acl = props.get("acl")
        if isinstance(acl, str) and acl.startswith("public"):
            problems.append(f"acl is {acl!r}; buckets are private, drop the ACL")
        return problems
    return []


def _bucket_keys(bucket: Resource) -> set[str]:
    """The values a companion resource's `bucket` input may hold for this bucket."""
    keys = set()
    for value in (bucket.id, bucket.props.get("bucket")):
        if isinstance(value, str) and value:
            keys.add(value)
    return keys


def _companions(bucket: Resource, resources: Sequence[Resource], types: Iterable[str]) -> list[Resource]:
    wanted = set(types)
    keys = _bucket_keys(bucket)
    found = []
    for other in resources:
        if other.type not in wanted:
            continue
        deps = other.property_dependencies.get("bucket") or ()
        if (bucket.urn and bucket.urn in deps) or other.props.get("bucket") in keys:
            found.append(other)
    return found


def check_s3_buckets(resources: Sequence[Resource], ctx: Context) -> list[tuple[str, str]]:
    """Every bucket has SSE-KMS, versioning Enabled and a full public access block.

    pulumi-aws 7 configures these through separate resources (BucketServerSideEncryptionConfiguration,
    BucketVersioning, BucketPublicAccessBlock) tied to the bucket by its ``bucket`` input, so this is a
    stack-level rule: it looks for the companion resources of each bucket.
    """
    violations = []
    for bucket in resources:
        if bucket.type not in S3_BUCKETS:
            continue
        label = bucket.name or bucket.urn
        inline_sse = bucket.props.get("serverSideEncryptionConfiguration")
        encrypted = isinstance(inline_sse, Mapping) and not _kms_rules(inline_sse.get("rule"))
        if not encrypted:
            encryption = _companions(bucket, resources, S3_ENCRYPTION)
            encrypted = any(not _kms_rules(r.props.get("rules")) for r in encryption)
        if not encrypted:
            violations.append((bucket.urn, f"bucket {label} has no SSE-KMS default encryption; add an "
                               "s3.BucketServerSideEncryptionConfiguration with sseAlgorithm 'aws:kms'"))
        inline_versioning = bucket.props.get("versioning")
        versioned = isinstance(inline_versioning, Mapping) and inline_versioning.get("enabled") is True
        if not versioned:
            versioned = any(
                _get(r.props, "versioningConfiguration", "status") in ("Enabled", UNKNOWN)
                for r in _companions(bucket, resources, S3_VERSIONING)
            )
        if not versioned:
            violations.append((bucket.urn, f"bucket {label} is not versioned; add an s3.BucketVersioning with "
                               "versioningConfiguration.status 'Enabled'"))
        blocks = _companions(bucket, resources, [S3_PUBLIC_ACCESS_BLOCK])
        if not any(not check_s3_settings(S3_PUBLIC_ACCESS_BLOCK, b.props, ctx) for b in blocks):
            violations.append((bucket.urn, f"bucket {label} has no full public access block; add an "
                               f"s3.BucketPublicAccessBlock with {', '.join(_PUBLIC_ACCESS_FLAGS)} all true"))
    return violations


# --- 4. ECR: immutable tags, scan on push -------------------------------------------------------------


def check_ecr(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """ECR repositories keep tags immutable (a tag names one image forever) and scan every push."""
    if resource_type != ECR_REPOSITORY:
        return []
    problems = []
    mutability = props.get("imageTagMutability")
    if mutability is not UNKNOWN and mutability != "IMMUTABLE":
        problems.append(f"imageTagMutability is {mutability!r} (AWS default MUTABLE); set it to 'IMMUTABLE'")
    scan = _get(props, "imageScanningConfiguration", "scanOnPush")
    if scan is not UNKNOWN and scan is not True:
        problems.append(f"imageScanningConfiguration.scanOnPush is {scan!r}; set it to true")
    return problems


# --- 5. prod API endpoint private, 6. EKS secrets encrypted with KMS ---------------------------------------


def check_prod_endpoint_private(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """In prod the EKS API endpoint is private only (AWS's default is public when not set)."""
    if resource_type != EKS_CLUSTER or ctx.environment != "prod":
        return []
    vpc = props.get("vpcConfig")
    if vpc is UNKNOWN:
        return []
    vpc = vpc if isinstance(vpc, Mapping) else {}
    problems = []
    public = vpc.get("endpointPublicAccess")
    if public is not UNKNOWN and public is not False:
        shown = "not set (AWS default: true)" if public is None else repr(public)
        problems.append(f"vpcConfig.endpointPublicAccess is {shown}; prod sets it to false")
    private = vpc.get("endpointPrivateAccess")
    if private is not UNKNOWN and private is not True:
        shown = "not set (AWS default: false)" if private is None else repr(private)
        problems.append(f"vpcConfig.endpointPrivateAccess is {shown}; prod sets it to true")
    return problems


def check_eks_secrets_encryption(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """EKS envelope-encrypts Kubernetes Secrets with a customer KMS key."""
    if resource_type != EKS_CLUSTER:
        return []
    config = props.get("encryptionConfig")
    if config is UNKNOWN:
        return []
    if not isinstance(config, Mapping):
        return ["encryptionConfig is not set; set {resources: ['secrets'], provider: {keyArn: <KMS key ARN>}}"]
    problems = []
    resources = config.get("resources")
    if resources is not UNKNOWN and "secrets" not in _as_list(resources):
        problems.append(f"encryptionConfig.resources is {resources!r}; include 'secrets'")
    key = _get(config, "provider", "keyArn")
    if key is not UNKNOWN and not (isinstance(key, str) and key):
        problems.append("encryptionConfig.provider.keyArn is empty; pass the platform KMS key's ARN")
    return problems


# --- Kubernetes workloads --------------------------------------------------------------------------


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec of a workload, wherever its kind keeps it."""
    if resource_type in _TEMPLATED_WORKLOADS:
        spec = _get(props, "spec", "template", "spec")
    elif resource_type == _CRON_JOB:
        spec = _get(props, "spec", "jobTemplate", "spec", "template", "spec")
    elif resource_type == _POD:
        spec = props.get("spec")
    else:
        return None
    return spec if isinstance(spec, Mapping) else None


def _containers(spec: Mapping[str, Any], *, init: bool = True) -> Iterator[tuple[str, Mapping[str, Any]]]:
    kinds = ("containers", "initContainers") if init else ("containers",)
    for kind in kinds:
        for container in _as_list(spec.get(kind)):
            if isinstance(container, Mapping):
                yield kind, container


def _labels(props: Mapping[str, Any]) -> dict[str, Any]:
    labels: dict[str, Any] = {}
    for path in (("metadata", "labels"), ("spec", "template", "metadata", "labels")):
        found = _get(props, *path)
        if isinstance(found, Mapping):
            labels.update(found)
    return labels


def _image_repository(image: str) -> str:
    """registry/path/name of an image reference, without tag or digest."""
    without_digest = image.split("@", 1)[0]
    last = without_digest.rsplit("/", 1)
    if ":" in last[-1]:
        without_digest = without_digest.rsplit(":", 1)[0]
    return without_digest


def is_triton_image(image: Any) -> bool:
    return isinstance(image, str) and "triton" in _image_repository(image).rsplit("/", 1)[-1].lower()


def _is_triton_workload(props: Mapping[str, Any]) -> bool:
    name = _labels(props).get("app.kubernetes.io/name")
    return isinstance(name, str) and name.lower().startswith("triton")


def triton_containers(resource_type: str, props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Triton server containers of a long-running workload.

    A container is Triton when its image is a Triton image, or when the workload is labelled
    app.kubernetes.io/name=triton* and the container is named triton* (sidecars stay out).
    """
    if resource_type not in _SERVING_WORKLOADS:
        return []
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    labelled = _is_triton_workload(props)
    found = []
    for _, container in _containers(spec, init=False):
        name = container.get("name")
        if is_triton_image(container.get("image")) or (
            labelled and isinstance(name, str) and name.lower().startswith("triton")
        ):
            found.append(container)
    return found


def check_triton_containers(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """Triton containers have startup/readiness/liveness probes, memory + CPU/GPU limits, an image by digest.

    Probes: a model load takes minutes, so without a startup probe the liveness probe kills the pod
    mid-load, and without readiness traffic reaches a server whose models are not loaded. Limits keep one
    pod from starving the node. A digest pins exactly the image (and TensorRT version) the engines were
    built for; a tag can move.
    """
    problems = []
    for container in triton_containers(resource_type, props):
        name = container.get("name", "<unnamed>")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if container.get(probe) is None:
                problems.append(f"container {name!r} has no {probe}; add one on /v2/health/ready or /v2/health/live")
        limits = _get(container, "resources", "limits")
        if limits is not UNKNOWN:
            limits = limits if isinstance(limits, Mapping) else {}
            missing = []
            if "memory" not in limits:
                missing.append("memory")
            if "cpu" not in limits and "nvidia.com/gpu" not in limits:
                missing.append("cpu or nvidia.com/gpu")
            if missing:
                problems.append(
                    f"container {name!r} resources.limits {dict(limits)} lacks {' and '.join(missing)}; set limits"
                )
        image = container.get("image")
        if image is not UNKNOWN and not (isinstance(image, str) and _DIGEST_RE.search(image)):
            problems.append(
                f"container {name!r} image {image!r} is not pinned by digest; use <repository>@sha256:<digest>"
            )
    return problems


def _is_secret_name(name: str) -> bool:
    segments = {s for s in re.split(r"[_\-.]+", name.upper()) if s}
    return bool(segments & _SECRET_NAME_SEGMENTS)


def check_plain_secret_env(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """Environment variables named like credentials come from a Secret (valueFrom), never a literal value.

    A literal `value` is stored in clear text in the workload's manifest, in the Kubernetes API, in the
    Pulumi state and in every `kubectl get -o yaml`.
    """
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    problems = []
    for kind, container in _containers(spec):
        for env in _as_list(container.get("env")):
            if not isinstance(env, Mapping):
                continue
            name = env.get("name")
            value = env.get("value")
            if not isinstance(name, str) or name in ctx.allowed_env_names or not _is_secret_name(name):
                continue
            if value is None or value == "":
                continue
            problems.append(
                f"{kind} {container.get('name', '<unnamed>')!r} sets env {name} as a plain value; use "
                "valueFrom.secretKeyRef (or add the name to this policy's allowedNames if it is not a secret)"
            )
    return problems


# --- Grafana ---------------------------------------------------------------------------------------------


def grafana_values(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Grafana's Helm values inside a kube-prometheus-stack (or a standalone grafana) release."""
    if resource_type != HELM_RELEASE and resource_type not in HELM_CHARTS:
        return None
    chart = props.get("chart")
    if not isinstance(chart, str):
        return None
    chart_name = chart.rstrip("/").rsplit("/", 1)[-1]
    values = props.get("values")
    values = values if isinstance(values, Mapping) else {}
    if chart_name == "kube-prometheus-stack":
        grafana = values.get("grafana")
        grafana = grafana if isinstance(grafana, Mapping) else {}
        if grafana.get("enabled") is False:
            return None
        return grafana
    if chart_name == "grafana":
        return values
    return None


def _anonymous_enabled_in_env(env: Any) -> bool:
    if isinstance(env, Mapping):
        return _truthy(env.get("GF_AUTH_ANONYMOUS_ENABLED"))
    return any(
        isinstance(e, Mapping) and e.get("name") == "GF_AUTH_ANONYMOUS_ENABLED" and _truthy(e.get("value"))
        for e in _as_list(env)
    )


def check_grafana_anonymous(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """Grafana anonymous access stays off (dashboards show model names, traffic and capacity)."""
    grafana = grafana_values(resource_type, props)
    if grafana is not None:
        ini = grafana.get("grafana.ini")
        section = ini.get("auth.anonymous") if isinstance(ini, Mapping) else None
        problems = []
        if isinstance(section, Mapping) and _truthy(section.get("enabled")):
            problems.append("grafana.ini auth.anonymous.enabled is true; set it to false")
        if _anonymous_enabled_in_env(grafana.get("env")):
            problems.append("env GF_AUTH_ANONYMOUS_ENABLED is true; remove it")
        return problems
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    return [
        f"container {c.get('name', '<unnamed>')!r} sets GF_AUTH_ANONYMOUS_ENABLED=true; remove it"
        for _, c in _containers(spec)
        if _anonymous_enabled_in_env(c.get("env"))
    ]


def check_grafana_admin_secret(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """Grafana's admin credentials come from an existing Secret, never a chart value.

    kube-prometheus-stack otherwise sets the well-known default password ``prom-operator``.
    """
    grafana = grafana_values(resource_type, props)
    if grafana is None:
        return []
    problems = []
    password = grafana.get("adminPassword")
    if password is not None and password is not UNKNOWN and password != "":
        problems.append("adminPassword is set in the chart values (clear text in the release); remove it")
    existing = _get(grafana, "admin", "existingSecret")
    if existing is not UNKNOWN and not (isinstance(existing, str) and existing):
        problems.append("admin.existingSecret is not set; point it at the Secret holding admin-user/admin-password")
    return problems


# --- the registry ----------------------------------------------------------------------------------------

RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule("imdsv2-hop-limit-1", "Launch templates require IMDSv2 with hop limit 1; node groups use one.",
                 check_imdsv2),
    ResourceRule("gpu-node-groups-tainted", "GPU node groups carry the nvidia.com/gpu NoSchedule taint.",
                 check_gpu_taint),
    ResourceRule("s3-settings-secure", "S3 encryption is SSE-KMS, versioning Enabled, public access fully blocked.",
                 check_s3_settings),
    ResourceRule("ecr-immutable-scan-on-push", "ECR repositories have immutable tags and scan on push.", check_ecr),
    ResourceRule("prod-eks-endpoint-private", "The prod EKS API endpoint is private only.",
                 check_prod_endpoint_private),
    ResourceRule("eks-secrets-kms-encrypted", "EKS encrypts Kubernetes Secrets with a KMS key.",
                 check_eks_secrets_encryption),
    ResourceRule("triton-probes-limits-digest",
                 "Triton containers have startup/readiness/liveness probes, resource limits and an image by digest.",
                 check_triton_containers),
    ResourceRule("grafana-anonymous-access-off", "Grafana anonymous access is disabled.", check_grafana_anonymous),
    ResourceRule("grafana-admin-from-secret", "Grafana admin credentials come from an existing Secret.",
                 check_grafana_admin_secret),
    ResourceRule("no-plain-secret-env", "Credential-named environment variables use valueFrom, not a plain value.",
                 check_plain_secret_env),
)

STACK_RULES: tuple[StackRule, ...] = (
    StackRule("s3-buckets-encrypted-versioned-private",
              "Every S3 bucket has SSE-KMS encryption, versioning and a full public access block.",
              check_s3_buckets),
)

RULE_NAMES = tuple(r.name for r in RESOURCE_RULES) + tuple(r.name for r in STACK_RULES)


def evaluate(resources: Sequence[Resource], ctx: Context) -> list[Violation]:
    """Run every rule over a stack's resources, as the policy pack does during preview/up."""
    violations = []
    for resource in resources:
        for rule in RESOURCE_RULES:
            for message in rule.check(resource.type, resource.props, ctx):
                violations.append(Violation(rule.name, resource.urn or resource.name, message))
    for stack_rule in STACK_RULES:
        for urn, message in stack_rule.check(resources, ctx):
            violations.append(Violation(stack_rule.name, urn, message))
    return violations


def environment_of(policy_config: Mapping[str, Any] | None, stack_config_environment: Any, stack: str | None) -> str:
    """dev or prod: the policy config wins, then the stack config, then the stack's name."""
    for candidate in ((policy_config or {}).get("environment"), stack_config_environment):
        if isinstance(candidate, str) and candidate in ("dev", "prod"):
            return candidate
    name = (stack or "").rsplit("/", 1)[-1].lower()
    return "prod" if name.startswith("prod") else "dev"


def from_engine_value(value: Any, unknown_sentinels: Iterable[str]) -> Any:
    """Plain data from engine-provided props, unknown sentinels replaced by UNKNOWN."""
    sentinels = set(unknown_sentinels)
    return _replace_unknowns(value, sentinels)


def _replace_unknowns(value: Any, sentinels: set[str]) -> Any:
    if isinstance(value, str):
        return UNKNOWN if value in sentinels else value
    if isinstance(value, Mapping):
        return {k: _replace_unknowns(v, sentinels) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [_replace_unknowns(v, sentinels) for v in value]
    return value
