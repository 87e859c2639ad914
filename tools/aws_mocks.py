"""Pulumi mocks that answer the way AWS would: ids in AWS's formats, ARNs, an API endpoint, a CA
certificate, an OIDC issuer, availability zones, caller identity, policy documents, ECR tokens.

Used by ``tools.offline`` (the mocked-program runner) and tests that run parts of the program.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks

ACCOUNT_ID = "123456789012"
DEPLOYER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/platform-deployer"
# AZ letters per region as AWS reports them for a standard account; other regions get three.
REGION_ZONE_LETTERS = {"us-east-1": "abcdef", "us-east-2": "abc", "us-west-2": "abcd", "eu-west-1": "abc"}


class UnmockedInvokeError(LookupError):
    """The program called an invoke (data source / function) these mocks have no answer for."""



def _digest(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


def autoname(name: str, type_: str) -> str:
    """Pulumi's auto-naming: the logical name plus a random suffix (deterministic here)."""
    return f"{name}-{_digest(type_, name, length=7)}"


ResourceHandler = Callable[["PlatformMocks", pulumi_mocks.MockResourceArgs], tuple[str, dict[str, Any]]]
CallHandler = Callable[["PlatformMocks", dict[str, Any]], dict[str, Any]]


class PlatformMocks(pulumi_mocks.Mocks):
    """Mocks whose answers look like AWS's and the Kubernetes API's.

    Extend with ``resources={type token: handler}`` / ``calls={invoke token: handler}``; an invoke
    nobody answers raises, so a new lookup cannot silently return nothing.
    """

    def __init__(
        self,
        region: str,
        *,
        zone_count: int | None = None,
        offerings: Mapping[str, Sequence[str]] | None = None,
        resources: Mapping[str, ResourceHandler] | None = None,
        calls: Mapping[str, CallHandler] | None = None,
    ):
        self.region = region
        letters = REGION_ZONE_LETTERS.get(region, "abc")
        self.zones = [f"{region}{letter}" for letter in letters[: zone_count or len(letters)]]
        # Zone names map to physical zones (IDs) differently in every account: here in reverse order, so a
        # program that picks zones by name instead of by ID picks different ones.
        short = f"{region[:2]}{''.join(p[0] for p in region.split('-')[1:-1])}{region.split('-')[-1]}"
        self.zone_ids = [f"{short}-az{len(self.zones) - i}" for i in range(len(self.zones))]
        # instance type -> zone IDs offering it; types not listed are offered in every zone.
        self.offerings = {k: list(v) for k, v in (offerings or {}).items()}
        self.resource_handlers: dict[str, ResourceHandler] = {**_RESOURCES, **(resources or {})}
        self.call_handlers: dict[str, CallHandler] = {**_CALLS, **(calls or {})}

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if regional else ''}:{ACCOUNT_ID}:{resource}"

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        handler = self.resource_handlers.get(args.typ)
        if handler is not None:
            resource_id, extra = handler(self, args)
        elif args.typ.startswith("kubernetes:"):
            resource_id, extra = _kubernetes_object(self, args)
        else:
            resource_id, extra = f"{args.name}-{_digest(args.typ, args.name, length=8)}", {}
        return resource_id, {**args.inputs, **extra}

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:
        handler = self.call_handlers.get(args.token)
        if handler is None:
            raise UnmockedInvokeError(
                f"offline mocks have no answer for invoke {args.token} (args {args.args}); "
                "add a handler to tools/offline.py or pass calls={...} to PlatformMocks"
            )
        return handler(self, dict(args.args))


def _named(args: pulumi_mocks.MockResourceArgs, key: str = "name") -> str:
    return args.inputs.get(key) or autoname(args.name, args.typ)


def _aws_id(prefix: str) -> ResourceHandler:
    def handler(mocks: PlatformMocks, args: pulumi_mocks.MockResourceArgs):
        rid = f"{prefix}-{_digest(args.typ, args.name)}"
        return rid, {"arn": mocks.arn("ec2", f"{prefix}/{rid}"), "ownerId": ACCOUNT_ID}

    return handler


def _iam_role(mocks, args):
    name = _named(args)
    return name, {
        "name": name,
        "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{name}",
        "uniqueId": "AROA" + _digest(name, length=17).upper(),
    }


def _oidc_provider(mocks, args):
    arn = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{str(args.inputs['url']).removeprefix('https://')}"
    return arn, {"arn": arn}


def _kms_key(mocks, args):
    key_id = str(uuid.UUID(_digest(args.name, length=32)))
    return key_id, {"keyId": key_id, "arn": mocks.arn("kms", f"key/{key_id}")}


def _log_group(mocks, args):
    name = _named(args)
    return name, {"name": name, "arn": mocks.arn("logs", f"log-group:{name}")}


def _launch_template(mocks, args):
    rid = f"lt-{_digest(args.typ, args.name)}"
    return rid, {
        "name": _named(args),
        "arn": mocks.arn("ec2", f"launch-template/{rid}"),
        "latestVersion": 1,
        "defaultVersion": 1,
    }


def _eks_cluster(mocks, args):
    name = _named(args)
    cluster_hex = _digest(name, length=32).upper()
    # A syntactically real (self-describing, not signed) PEM, so kubeconfig consumers can parse it.
    pem = (
        "-----BEGIN CERTIFICATE-----\n"
        + base64.b64encode(f"offline CA of {name}".encode()).decode()
        + "\n-----END CERTIFICATE-----\n"
    )
    vpc_config = dict(args.inputs.get("vpcConfig") or {})
    vpc_config.update({"clusterSecurityGroupId": f"sg-{_digest(name, 'cluster-sg')}", "vpcId": f"vpc-{_digest(name)}"})
    return name, {
        "name": name,
        "arn": mocks.arn("eks", f"cluster/{name}"),
        "endpoint": f"https://{cluster_hex}.gr7.{mocks.region}.eks.amazonaws.com",
        "certificateAuthority": {"data": base64.b64encode(pem.encode()).decode()},
        "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{mocks.region}.amazonaws.com/id/{cluster_hex}"}]}],
        "platformVersion": "eks.1",
        "status": "ACTIVE",
        "version": args.inputs.get("version"),
        "vpcConfig": vpc_config,
    }


def _eks_node_group(mocks, args):
    name = _named(args, "nodeGroupName")
    cluster = args.inputs.get("clusterName")
    return f"{cluster}:{name}", {
        "nodeGroupName": name,
        "arn": mocks.arn("eks", f"nodegroup/{cluster}/{name}/{_digest(name, length=8)}"),
        "status": "ACTIVE",
        "resources": [{"autoscalingGroups": [{"name": f"eks-{name}-{_digest(name, length=8)}"}]}],
    }


def _eks_addon(mocks, args):
    cluster, addon = args.inputs.get("clusterName"), args.inputs.get("addonName")
    return f"{cluster}:{addon}", {"arn": mocks.arn("eks", f"addon/{cluster}/{addon}/{_digest(args.name, length=8)}")}


def _ecr_repository(mocks, args):
    name = _named(args)
    return name, {
        "name": name,
        "arn": mocks.arn("ecr", f"repository/{name}"),
        "registryId": ACCOUNT_ID,
        "repositoryUrl": f"{ACCOUNT_ID}.dkr.ecr.{mocks.region}.amazonaws.com/{name}",
    }


def _docker_image(mocks, args):
    name = args.inputs["imageName"]
    # pulumi-docker reports repoDigest as repo:tag@sha256:... (the digest of the pushed manifest).
    return f"{name}-id", {"repoDigest": f"{name}@sha256:{_digest('image', name, length=64)}", "baseImageName": name}


def _engine(mocks, args):
    """What the Engine provider's create returns, for an artifact that is already in the store."""
    key, store = args.inputs["key"], args.inputs.get("store") or "s3://model-store/"
    uri = f"{store.rstrip('/')}/engines/{key}/artifact/"
    return key, {
        "uri": uri,
        "primary_uri": uri,
        "sha256": _digest("artifact", key, length=64),
        "size_bytes": 1,
        "cache_hit": True,
        "build_seconds": 0.0,
    }


def _s3_bucket(mocks, args):
    bucket = args.inputs.get("bucket") or autoname(args.name, args.typ).lower()
    return bucket, {
        "bucket": bucket,
        "arn": f"arn:aws:s3:::{bucket}",
        "bucketDomainName": f"{bucket}.s3.amazonaws.com",
        "bucketRegionalDomainName": f"{bucket}.s3.{mocks.region}.amazonaws.com",
        "region": mocks.region,
    }


def _random_password(mocks, args):
    # As pulumi-random answers: `result` of the requested length (deterministic here, from the name).
    length = int(args.inputs.get("length", 16))
    seed = hashlib.sha256(args.name.encode()).hexdigest()
    result = (seed * (length // len(seed) + 1))[:length]
    return f"{args.name}-id", {"result": result}


def _helm_release(mocks, args):
    name = _named(args)
    namespace = args.inputs.get("namespace") or "default"
    return f"{namespace}/{name}", {
        "name": name,
        "status": {
            "name": name,
            "namespace": namespace,
            "chart": args.inputs.get("chart"),
            "version": args.inputs.get("version"),
            "status": "deployed",
            "revision": 1,
        },
    }


def _kubernetes_object(mocks, args):
    metadata = dict(args.inputs.get("metadata") or {})
    metadata.setdefault("name", autoname(args.name, args.typ))
    metadata["uid"] = str(uuid.UUID(_digest(args.typ, args.name, length=32)))
    namespace = metadata.get("namespace")
    rid = f"{namespace}/{metadata['name']}" if namespace else metadata["name"]
    return rid, {"metadata": metadata}


def _provider(mocks, args):
    return f"{args.name}-{_digest(args.name, length=8)}", {}


_RESOURCES: dict[str, ResourceHandler] = {
    "random:index/randomPassword:RandomPassword": _random_password,
    "aws:ec2/vpc:Vpc": _aws_id("vpc"),
    "aws:ec2/subnet:Subnet": _aws_id("subnet"),
    "aws:ec2/internetGateway:InternetGateway": _aws_id("igw"),
    "aws:ec2/eip:Eip": _aws_id("eipalloc"),
    "aws:ec2/natGateway:NatGateway": _aws_id("nat"),
    "aws:ec2/routeTable:RouteTable": _aws_id("rtb"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _aws_id("rtbassoc"),
    "aws:ec2/vpcEndpoint:VpcEndpoint": _aws_id("vpce"),
    "aws:ec2/securityGroup:SecurityGroup": _aws_id("sg"),
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:iam/role:Role": _iam_role,
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": _oidc_provider,
    "aws:kms/key:Key": _kms_key,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:eks/cluster:Cluster": _eks_cluster,
    "aws:eks/nodeGroup:NodeGroup": _eks_node_group,
    "aws:eks/addon:Addon": _eks_addon,
    "aws:ecr/repository:Repository": _ecr_repository,
    "aws:s3/bucket:Bucket": _s3_bucket,
    "docker:index/image:Image": _docker_image,
    "pulumi-python:dynamic/engines:Engine": _engine,
    "kubernetes:helm.sh/v3:Release": _helm_release,
    "pulumi:providers:kubernetes": _provider,
    "pulumi:providers:aws": _provider,
}


def _caller_identity(mocks, args):
    return {
        "accountId": ACCOUNT_ID,
        "arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{DEPLOYER_ROLE_ARN.rsplit('/', 1)[-1]}/offline-session",
        "userId": "AROAOFFLINE:offline-session",
        "id": ACCOUNT_ID,
    }


def _session_context(mocks, args):
    arn = args["arn"]
    if ":assumed-role/" in arn:
        role = arn.split(":assumed-role/", 1)[1].split("/")[0]
        issuer = f"arn:aws:iam::{arn.split(':')[4]}:role/{role}"
        return {
            "arn": arn,
            "issuerArn": issuer,
            "issuerName": role,
            "issuerId": "AROAOFFLINE",
            "sessionName": "offline-session",
            "id": arn,
        }
    return {
        "arn": arn,
        "issuerArn": arn,
        "issuerName": arn.rsplit("/", 1)[-1],
        "issuerId": "",
        "sessionName": "",
        "id": arn,
    }


def _partition(mocks, args):
    return {"partition": "aws", "dnsSuffix": "amazonaws.com", "reverseDnsPrefix": "com.amazonaws", "id": "aws"}


def _region(mocks, args):
    return {
        "name": mocks.region,
        "region": mocks.region,
        "endpoint": f"ec2.{mocks.region}.amazonaws.com",
        "id": mocks.region,
    }


def _instance_type_offerings(mocks, args):
    (types,) = [f["values"] for f in args.get("filters", []) if f["name"] == "instance-type"]
    zones = [z for z in mocks.zone_ids if all(z in mocks.offerings.get(t, mocks.zone_ids) for t in types)]
    return {
        "id": mocks.region,
        "locationType": args.get("locationType"),
        "locations": zones,
        "locationTypes": ["availability-zone-id"] * len(zones),
        "instanceTypes": [types[0]] * len(zones),
    }


def _availability_zones(mocks, args):
    return {
        "names": list(mocks.zones),
        "zoneIds": list(mocks.zone_ids),
        "groupNames": [mocks.region] * len(mocks.zones),
        "id": mocks.region,
    }


def _one_or_list(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else list(values)


def render_policy_document(args: Mapping[str, Any]) -> dict[str, Any]:
    """What aws.iam.getPolicyDocument returns: the statements rendered as IAM JSON."""
    statements = []
    for stmt in args.get("statements") or []:
        out: dict[str, Any] = {}
        if stmt.get("sid"):
            out["Sid"] = stmt["sid"]
        out["Effect"] = stmt.get("effect") or "Allow"
        for key, name in (
            ("actions", "Action"),
            ("notActions", "NotAction"),
            ("resources", "Resource"),
            ("notResources", "NotResource"),
        ):
            if stmt.get(key):
                out[name] = _one_or_list(stmt[key])
        for key, name in (("principals", "Principal"), ("notPrincipals", "NotPrincipal")):
            if stmt.get(key):
                grouped: dict[str, list[str]] = {}
                for principal in stmt[key]:
                    grouped.setdefault(principal["type"], []).extend(principal["identifiers"])
                out[name] = "*" if set(grouped) == {"*"} else {t: _one_or_list(ids) for t, ids in grouped.items()}
        if stmt.get("conditions"):
            conditions: dict[str, dict[str, Any]] = {}
            for cond in stmt["conditions"]:
                conditions.setdefault(cond["test"], {})[cond["variable"]] = _one_or_list(cond["values"])
            out["Condition"] = conditions
        statements.append(out)
    document = {"Version": args.get("version") or "2012-10-17", "Statement": statements}
    text = json.dumps(document, indent=2)
    return {"json": text, "minifiedJson": json.dumps(document, separators=(",", ":")), "id": _digest(text, length=10)}


def _ecr_token(mocks, args):
    return {
        "authorizationToken": "QVdTOm9mZmxpbmUtdG9rZW4=",
        "userName": "AWS",
        "password": "offline-ecr-password",
        "proxyEndpoint": f"https://{ACCOUNT_ID}.dkr.ecr.{mocks.region}.amazonaws.com",
        "expiresAt": "2030-01-01T00:00:00Z",
        "registryId": args.get("registryId") or ACCOUNT_ID,
        "id": "token",
    }


_CALLS: dict[str, CallHandler] = {
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": _ecr_token,
    "aws:index/getCallerIdentity:getCallerIdentity": _caller_identity,
    "aws:iam/getSessionContext:getSessionContext": _session_context,
    "aws:index/getPartition:getPartition": _partition,
    "aws:index/getRegion:getRegion": _region,
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": _instance_type_offerings,
    "aws:iam/getPolicyDocument:getPolicyDocument": lambda mocks, args: render_policy_document(args),
}
