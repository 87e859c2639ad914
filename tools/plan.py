"""Offline plan: what a stack declares, without a Pulumi CLI, credentials or a cloud.

    python -m tools.plan --stack dev            # one stack
    python -m tools.plan                        # every Pulumi.<stack>.yaml
    python -m tools.plan --stack prod --json    # machine-readable, e.g. to diff two revisions
    python -m tools.plan --sources-lock tests/fixtures/sources.lock.synthetic.json   # before sources are pinned

Runs the real program (``__main__.py``) with that stack's config under Pulumi's mocks
(``tools.offline``) and prints every declared resource, grouped by type, with the settings a
reviewer checks (instance types, taints, IMDS, encryption, endpoint access, chart versions, ...).
Ids, ARNs and the account are the mocks' stand-ins, not real values. A stack whose config is
invalid prints the settings error and exits 1.

The plan is strict about engine sources: every source an engine builds from must be pinned in the
stack's source lock (``engines.sourcesLock``, by default ``engines/sources.lock.json``), or the stack
fails as ``pulumi preview`` would. ``--sources-lock PATH`` plans against another lock, e.g. the
synthetic test fixture, whose digests are not real artifacts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from engines.source_lock import SourceLockError
from platform_spec.settings import REPO_ROOT, SettingsError, read_stack_config
from tools.offline import STAND_IN_ACCESS, ProgramRun, Registration, apply_overrides, run_program

Summary = Callable[[dict[str, Any]], str]

# A lock of synthetic digests (the sha256 of each URI's text) that the tests run the program with;
# it lets a checkout without pinned sources plan every stack. Named in the hint below.
SYNTHETIC_SOURCES_LOCK = "tests/fixtures/sources.lock.synthetic.json"


def _short(arn: Any) -> str:
    return str(arn).rsplit("/", 1)[-1]


def _labels(labels: dict[str, Any] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def _num(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _subnet(i: dict[str, Any]) -> str:
    tags = i.get("tags") or {}
    role = "public/elb" if "kubernetes.io/role/elb" in tags else "private/internal-elb" if tags else ""
    zone = i.get('availabilityZoneId') or i.get('availabilityZone')
    return f"{i.get('cidrBlock')} {zone} {role}".strip()


def _route_table(i: dict[str, Any]) -> str:
    routes = i.get("routes") or []
    return "; ".join(
        f"{r.get('cidrBlock')} -> {'nat ' + str(r['natGatewayId']) if r.get('natGatewayId') else 'igw'}" for r in routes
    )


def _cluster(i: dict[str, Any]) -> str:
    vpc, access = i.get("vpcConfig") or {}, i.get("accessConfig") or {}
    public = vpc.get("endpointPublicAccess")
    cidrs = f" from {','.join(vpc.get('publicAccessCidrs') or [])}" if public else ""
    creator_admin = access.get("bootstrapClusterCreatorAdminPermissions")
    logs = ",".join(i.get("enabledClusterLogTypes") or [])
    return "; ".join(
        [
            f"k8s {i.get('version')}",
            f"endpoint private={vpc.get('endpointPrivateAccess')} public={public}{cidrs}",
            f"auth={access.get('authenticationMode')} creatorAdmin={creator_admin}",
            f"secrets KMS={'yes' if i.get('encryptionConfig') else 'NO'}",
            f"logs={logs}",
            f"deletionProtection={i.get('deletionProtection')}",
        ]
    )


def _sse(i: dict[str, Any]) -> str:
    parts = []
    for rule in i.get("rules") or []:
        default = rule.get("applyServerSideEncryptionByDefault") or {}
        parts.append(f"{default.get('sseAlgorithm')} bucketKey={rule.get('bucketKeyEnabled')}")
    return "; ".join(parts)


def _launch_template(i: dict[str, Any]) -> str:
    md = i.get("metadataOptions") or {}
    parts = [f"IMDS tokens={md.get('httpTokens')} hop={_num(md.get('httpPutResponseHopLimit'))}"]
    for bdm in i.get("blockDeviceMappings") or []:
        ebs = bdm.get("ebs") or {}
        parts.append(
            f"{bdm.get('deviceName')} {_num(ebs.get('volumeSize'))}GiB {ebs.get('volumeType')} "
            f"encrypted={ebs.get('encrypted')}"
        )
    return "; ".join(parts)


def _node_group(i: dict[str, Any]) -> str:
    sc = i.get("scalingConfig") or {}
    taints = ",".join(f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in i.get("taints") or []) or "none"
    return (
        f"{i.get('amiType')} {i.get('capacityType')} {','.join(i.get('instanceTypes') or [])}; "
        f"size {_num(sc.get('minSize'))}/{_num(sc.get('desiredSize'))}/{_num(sc.get('maxSize'))} (min/desired/max); "
        f"taints {taints}; labels {_labels(i.get('labels'))}"
    )


def _addon(i: dict[str, Any]) -> str:
    extra = []
    if i.get("configurationValues"):
        extra.append(f"config {i['configurationValues']}")
    for association in i.get("podIdentityAssociations") or []:
        extra.append(f"pod identity sa={association.get('serviceAccount')}")
    return " ".join([f"{i.get('addonName')} {i.get('addonVersion')}", *extra])


def _role(i: dict[str, Any]) -> str:
    policy = json.loads(i.get("assumeRolePolicy") or "{}")
    services = [s.get("Principal", {}).get("Service") for s in policy.get("Statement", [])]
    return f"trusted by {','.join(str(s) for s in services)}"


def _inline_policy(i: dict[str, Any]) -> str:
    statements = json.loads(i.get("policy") or "{}").get("Statement", [])
    actions = []
    for statement in statements:
        action = statement.get("Action", [])
        actions += [action] if isinstance(action, str) else action
    return f"{statements[0].get('Effect', '?') if statements else '?'} {','.join(actions)}"


def _release(i: dict[str, Any]) -> str:
    values = i.get("values") or {}
    tolerations = ",".join(t.get("key", "*") for t in values.get("tolerations") or []) or "none"
    extra = ""
    config_map = (values.get("config") or {}).get("map") or {}
    for name, text in config_map.items():
        sharing = (yaml.safe_load(text) or {}).get("sharing", {}).get("timeSlicing", {})
        replicas = ",".join(str(r.get("replicas")) for r in sharing.get("resources", []))
        extra += f" config[{name}]: time-slicing replicas={replicas}" if sharing else f" config[{name}]"
    monitor = values.get("serviceMonitor", {}).get("enabled") if "serviceMonitor" in values else None
    monitor_text = f" serviceMonitor={monitor}" if monitor is not None else ""
    return (
        f"{i.get('chart')}@{i.get('version')} from {(i.get('repositoryOpts') or {}).get('repo')} "
        f"release={i.get('name')} ns={i.get('namespace')} tolerates={tolerations}{extra}{monitor_text}"
    )


def _storage_class(i: dict[str, Any]) -> str:
    meta = i.get("metadata") or {}
    default = (meta.get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    return (
        f"{meta.get('name')} {i.get('provisioner')} {_labels(i.get('parameters'))} "
        f"reclaim={i.get('reclaimPolicy')} default={default}"
    )


def _k8s_name(i: dict[str, Any]) -> str:
    meta = i.get("metadata") or {}
    return f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))


def _short_image(image: Any) -> str:
    """repository@sha256:<12 hex> (or the tag): enough to see an image is pinned by digest."""
    text = str(image)
    repository, _, digest = text.partition("@sha256:")
    return f"{repository.rsplit('/', 1)[-1]}@sha256:{digest[:12]}" if digest else text.rsplit("/", 1)[-1]


def _limits(container: dict[str, Any]) -> str:
    limits = (container.get("resources") or {}).get("limits") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(limits.items())) or "none"


def _pod_summary(pod: dict[str, Any], *, probes: bool = True) -> str:
    parts = []
    for c in pod.get("containers") or []:
        text = f"{c.get('name')} {_short_image(c.get('image'))} limits {_limits(c)}"
        if probes:  # a long-running server's; a Job runs to completion without them
            kinds = [p[: -len("Probe")] for p in ("startupProbe", "readinessProbe", "livenessProbe") if c.get(p)]
            text += f" probes {'/'.join(kinds) or 'none'}"
        parts.append(text)
    return "; ".join(parts)


def _deployment(i: dict[str, Any]) -> str:
    spec = i.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    return f"{_k8s_name(i)} replicas={_num(spec.get('replicas'))}: {_pod_summary(pod)}"


def _job(i: dict[str, Any]) -> str:
    spec = i.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    return f"{_k8s_name(i)} backoffLimit={_num(spec.get('backoffLimit'))}: {_pod_summary(pod, probes=False)}"


def _service(i: dict[str, Any]) -> str:
    spec = i.get("spec") or {}
    ports = ",".join(f"{p.get('name')}:{_num(p.get('port'))}" for p in spec.get("ports") or [])
    return f"{_k8s_name(i)} {spec.get('type', 'ClusterIP')} {ports}"


def _scaled_object(i: dict[str, Any]) -> str:
    spec = i.get("spec") or {}
    triggers = [
        f"{t.get('name')} > {(t.get('metadata') or {}).get('threshold')}" for t in spec.get("triggers") or []
    ]
    replicas = f"{_num(spec.get('minReplicaCount'))}-{_num(spec.get('maxReplicaCount'))}"
    return f"{_k8s_name(i)} {replicas} on {'; '.join(triggers)}"


def _pdb(i: dict[str, Any]) -> str:
    spec = i.get("spec") or {}
    budget = " ".join(f"{k}={_num(spec[k])}" for k in ("maxUnavailable", "minAvailable") if k in spec)
    return f"{_k8s_name(i)} {budget}"


def _network_policy(i: dict[str, Any]) -> str:
    spec = i.get("spec") or {}
    return f"{_k8s_name(i)} {','.join(spec.get('policyTypes') or [])}"


def _prometheus_rule(i: dict[str, Any]) -> str:
    groups = (i.get("spec") or {}).get("groups") or []
    return f"{_k8s_name(i)} {sum(len(g.get('rules') or []) for g in groups)} rules in {len(groups)} groups"


def _engine(i: dict[str, Any]) -> str:
    runner = i.get("runner") or {}
    return (
        f"{i.get('model')} {i.get('builder')} {i.get('precision')} for {i.get('gpu_sku')} "
        f"(sm {i.get('compute_capability')}, {i.get('runtime')} {i.get('runtime_version')}) "
        f"from {i.get('source_uri')}; key {str(i.get('key'))[:12]}; built by {runner.get('kind')} "
        f"runner on pool {runner.get('pool')}"
    )


SUMMARIES: dict[str, Summary] = {
    "aws:ec2/vpc:Vpc": lambda i: f"cidr {i.get('cidrBlock')}",
    "aws:ec2/subnet:Subnet": _subnet,
    "aws:ec2/routeTable:RouteTable": _route_table,
    "aws:ec2/natGateway:NatGateway": lambda i: f"in {i.get('subnetId')}",
    "aws:ec2/vpcEndpoint:VpcEndpoint": lambda i: f"{i.get('vpcEndpointType')} {i.get('serviceName')}",
    "aws:ec2/tag:Tag": lambda i: f"{i.get('resourceId')} {i.get('key')}={i.get('value')}",
    "aws:eks/cluster:Cluster": _cluster,
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "aws:eks/addon:Addon": _addon,
    "aws:eks/accessEntry:AccessEntry": lambda i: f"{i.get('principalArn')} type={i.get('type')}",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": lambda i: (
        f"{_short(i.get('policyArn'))} scope={(i.get('accessScope') or {}).get('type')} for {i.get('principalArn')}"
    ),
    "aws:iam/role:Role": _role,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": lambda i: _short(i.get("policyArn")),
    "aws:iam/rolePolicy:RolePolicy": _inline_policy,
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": lambda i: (
        f"{i.get('namespace')}/{i.get('serviceAccount')} -> {_short(i.get('roleArn'))}"
    ),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": lambda i: (
        f"audience {','.join(i.get('clientIdLists') or [])}"
    ),
    "aws:kms/key:Key": lambda i: (
        f"rotation={i.get('enableKeyRotation')} deletionWindow={_num(i.get('deletionWindowInDays'))}d"
    ),
    "aws:kms/alias:Alias": lambda i: str(i.get("name")),
    "aws:cloudwatch/logGroup:LogGroup": lambda i: f"{i.get('name')} retention={_num(i.get('retentionInDays'))}d",
    "aws:ecr/repository:Repository": lambda i: (
        f"{i.get('name')} tags={i.get('imageTagMutability')} "
        f"scanOnPush={(i.get('imageScanningConfiguration') or {}).get('scanOnPush')} "
        f"encryption={','.join(e.get('encryptionType', '') for e in i.get('encryptionConfigurations') or [])} "
        f"forceDelete={i.get('forceDelete')}"
    ),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": lambda i: "; ".join(
        r["description"] for r in json.loads(i.get("policy") or "{}").get("rules", [])
    ),
    "aws:s3/bucket:Bucket": lambda i: f"forceDestroy={i.get('forceDestroy')}",
    "aws:s3/bucketVersioning:BucketVersioning": lambda i: str((i.get("versioningConfiguration") or {}).get("status")),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": _sse,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": lambda i: " ".join(
        f"{k}={i.get(k)}" for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": lambda i: str(
        (i.get("rule") or {}).get("objectOwnership")
    ),
    "aws:s3/bucketPolicy:BucketPolicy": lambda i: (
        "statements " + ",".join(s.get("Sid", "?") for s in json.loads(i.get("policy") or "{}").get("Statement", []))
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": lambda i: ",".join(
        r.get("id", "?") for r in i.get("rules") or []
    ),
    "kubernetes:helm.sh/v3:Release": _release,
    "kubernetes:core/v1:Namespace": lambda i: (
        f"{(i.get('metadata') or {}).get('name')} {_labels((i.get('metadata') or {}).get('labels'))}"
    ),
    "kubernetes:storage.k8s.io/v1:StorageClass": _storage_class,
    "pulumi:providers:kubernetes": lambda i: "explicit provider, kubeconfig [secret]",
    "aws:s3/bucketObjectv2:BucketObjectv2": lambda i: f"{i.get('key')} ({i.get('contentType')})",
    "kubernetes:apps/v1:Deployment": _deployment,
    "kubernetes:batch/v1:Job": _job,
    "kubernetes:core/v1:Service": _service,
    "kubernetes:keda.sh/v1alpha1:ScaledObject": _scaled_object,
    "kubernetes:policy/v1:PodDisruptionBudget": _pdb,
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": _network_policy,
    "kubernetes:monitoring.coreos.com/v1:PrometheusRule": _prometheus_rule,
    # Only the name and type: a Secret's values never reach the plan.
    "kubernetes:core/v1:Secret": lambda i: f"{_k8s_name(i)} type={i.get('type')}",
    "pulumi-python:dynamic/engines:Engine": _engine,
    "pulumi-python:dynamic/triton:StoreCopy": lambda i: f"{i.get('kind')} -> {i.get('destination')}",
}


def summarize(registration: Registration) -> str:
    summary = SUMMARIES.get(registration.type)
    if summary is not None:
        try:
            text = summary(registration.inputs)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            text = f"(summary failed: {exc})"
    elif registration.type.startswith("kubernetes:") and "metadata" in registration.inputs:
        text = _k8s_name(registration.inputs)
    else:
        # "__provider" and the like are the SDK's (a dynamic provider's pickled code), not settings.
        scalars = [
            (k, v)
            for k, v in sorted(registration.inputs.items())
            if isinstance(v, (str, int, float, bool)) and not k.startswith("__")
        ]
        text = " ".join(f"{k}={_num(v)}" for k, v in scalars[:5])
    flags = []
    if registration.protect:
        flags.append("[protected]")
    if registration.ignore_changes:
        flags.append(f"[ignores {','.join(registration.ignore_changes)}]")
    return " ".join([text, *flags]).strip()


def render(run: ProgramRun) -> str:
    resources = [r for r in run.registrations if r.custom]
    components = [r for r in run.registrations if not r.custom]
    by_type: dict[str, list[Registration]] = defaultdict(list)
    for registration in resources:
        by_type[registration.type].append(registration)

    lines = [
        f"Stack {run.stack} (Pulumi.{run.stack}.yaml): {len(resources)} resources in {len(components)} components",
        "Offline plan under Pulumi mocks: ids, ARNs and the account (123456789012) are stand-ins.",
        "",
    ]
    for type_ in sorted(by_type):
        group = sorted(by_type[type_], key=lambda r: r.name)
        lines.append(f"{type_} ({len(group)})")
        width = max(len(r.name) for r in group)
        lines.extend(f"  {r.name:<{width}}  {summarize(r)}" for r in group)
    lines += ["", "Components:"]
    lines += [f"  {r.type}  {r.name}" for r in sorted(components, key=lambda r: (r.type, r.name))]
    lines += ["", "Stack outputs:"]
    width = max((len(k) for k in run.outputs), default=0)
    for key in sorted(run.outputs):
        value = "[secret]" if key in run.secret_outputs else json.dumps(run.outputs[key])
        lines.append(f"  {key:<{width}}  {value}")
    return "\n".join(lines)


def as_json(run: ProgramRun) -> dict[str, Any]:
    return {
        "stack": run.stack,
        "resources": [
            {
                "type": r.type,
                "name": r.name,
                "protect": r.protect,
                "ignoreChanges": list(r.ignore_changes),
                "inputs": {k: ("[secret]" if k in r.secret_inputs else v) for k, v in r.inputs.items()},
            }
            for r in sorted(run.registrations, key=lambda r: (r.type, r.name))
        ],
        "outputs": {k: ("[secret]" if k in run.secret_outputs else v) for k, v in run.outputs.items()},
    }


def known_stacks() -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in REPO_ROOT.glob("Pulumi.*.yaml"))


def missing_pins_hint(error: BaseException, sources_lock: str | None) -> str | None:
    """One line on what to do when a stack failed only because engine sources are not pinned."""
    # SourceLockError is also raised for a lock that is not valid JSON; only missing pins get the hint.
    if not isinstance(error, SourceLockError) or "has no pinned digest" not in str(error):
        return None
    if sources_lock:
        return (
            f"hint: the lock given with --sources-lock ({sources_lock}) lacks these pins; record them into it, "
            f"or plan with --sources-lock {SYNTHETIC_SOURCES_LOCK} (synthetic digests, not real artifacts)"
        )
    return (
        f"hint: no real sources pinned yet? plan with --sources-lock {SYNTHETIC_SOURCES_LOCK} "
        "(synthetic digests, not real artifacts)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", action="append", help="stack to plan (repeatable; default: every stack)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument(
        "--stand-ins",
        action="store_true",
        help="fill what only your team can set with stand-ins (the synthetic source lock, an example admin "
        "role and deployer CIDR), to see the whole stack before they are set; not real values",
    )
    parser.add_argument(
        "--sources-lock",
        metavar="PATH",
        help="plan against this engine source lock instead of the stack's engines.sourcesLock (e.g. the "
        "synthetic tests/fixtures/sources.lock.synthetic.json before real sources are pinned)",
    )
    args = parser.parse_args(argv)

    status = 0
    hint = None
    documents = []
    for stack in args.stack or known_stacks():
        try:
            config = read_stack_config(stack)
            if args.stand_ins:
                config = apply_overrides(config, STAND_IN_ACCESS)
                args.sources_lock = args.sources_lock or SYNTHETIC_SOURCES_LOCK
            if args.sources_lock:
                engines = dict(config.get("triton-platform:engines") or {})
                config["triton-platform:engines"] = {**engines, "sourcesLock": args.sources_lock}
        except SettingsError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        run = run_program(config, stack=stack)
        if run.error is not None:
            print(f"stack {stack}: {run.error}", file=sys.stderr)
            hint = missing_pins_hint(run.error, args.sources_lock) or hint
            if isinstance(run.error, SettingsError) and "before the first preview" in run.error.source:
                hint = "hint: to see the whole plan before your team's values are set, add --stand-ins"
            status = 1
            continue
        if args.json:
            documents.append(as_json(run))
        else:
            print(render(run), end="\n\n")
    if args.json:
        print(json.dumps(documents, indent=2, default=str))
    if hint:
        print(hint, file=sys.stderr)  # last: it is the next thing to do
    return status


if __name__ == "__main__":
    sys.exit(main())
