"""What every rule works with: resources and context, type tokens, value readers, unknown values."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
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
