"""Rules over AWS resources: IMDSv2, GPU node group taints, S3, ECR, the EKS endpoint and Secrets encryption."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .base import (
    _BLOCKING_TAINT_EFFECTS,
    _GPU_AMI_MARKERS,
    _KMS_ALGORITHMS,
    EC2_INSTANCE,
    ECR_REPOSITORY,
    EKS_CLUSTER,
    EKS_NODE_GROUP,
    GPU_INSTANCE_FAMILIES,
    GPU_TAINT_KEY,
    LAUNCH_TEMPLATE,
    S3_BUCKETS,
    S3_ENCRYPTION,
    S3_PUBLIC_ACCESS_BLOCK,
    S3_VERSIONING,
    UNKNOWN,
    Context,
    Resource,
    _as_list,
    _get,
    _is_true,
)

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
