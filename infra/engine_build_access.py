"""Where engine-build Jobs run and what they may touch: namespace, service account, network policy, IAM.

``EngineBuildAccess`` provisions, on the cluster (through the explicit Kubernetes provider it is
given): the ``engine-builds`` namespace (Pod Security ``restricted`` enforced: build pods run as a
non-root UID with a read-only root filesystem), the ``engine-builder`` service account,
and a NetworkPolicy that admits no ingress and lets egress reach only DNS, HTTPS (S3, and PyPI for
the Job's bootstrap packages) and the EKS Pod Identity agent (its credentials). In AWS: one IAM role
for that service account through EKS Pod
Identity, whose inline policy reads the build inputs (``sources/``, ``exports/``, ``calibration/``),
reads and writes the engine store (``engines/``, ``timing-caches/``, ``.tmp/``) under the store
prefix, and uses the model store's KMS key through S3 only. Nothing else in the bucket is writable.

Settings: cluster name, bucket and KMS key ARNs, region, store prefix (the path of the engine store
URI inside the bucket), namespace and service account names, tags. ``runner_settings()`` returns the
matching ``runner`` keys for ``infra.engine_declarations.declare_engines``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.iam import pod_identity_role

READ_PREFIXES = ("sources/", "exports/", "calibration/", "engines/", "timing-caches/")
WRITE_PREFIXES = ("engines/", "timing-caches/", ".tmp/")


def build_policy(bucket_arn: str, kms_key_arn: str, region: str, store_prefix: str = "") -> str:
    """Least privilege for a build: read inputs, publish artifacts, nothing outside these prefixes."""
    prefix = store_prefix.strip("/") + "/" if store_prefix.strip("/") else ""
    reads = [f"{bucket_arn}/{prefix}{p}*" for p in READ_PREFIXES]
    writes = [f"{bucket_arn}/{prefix}{p}*" for p in WRITE_PREFIXES]
    statements: list[dict[str, Any]] = [
        {"Sid": "ReadBuildInputsAndEngines", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": reads},
        {
            # Publishing uploads to .tmp/, copies to engines/ and removes the staged objects.
            "Sid": "PublishEngines",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": writes,
        },
        {
            "Sid": "ListBuildPrefixes",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [bucket_arn],
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}{p}*" for p in READ_PREFIXES + (".tmp/",)]}},
        },
        {
            "Sid": "ModelStoreKeyThroughS3",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": [kms_key_arn],
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


def namespace_manifest(namespace: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "engine-builds",
                # Build pods run non-root, read-only root, no escalation, no capabilities, RuntimeDefault seccomp.
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
            },
        }
    }


def service_account_manifest(namespace: str, service_account: str) -> dict[str, Any]:
    return {
        "metadata": {"name": service_account, "namespace": namespace},
        # Build pods talk to S3 with the Pod Identity role, never to the Kubernetes API.
        "automount_service_account_token": False,
    }


# The EKS Pod Identity agent (a DaemonSet on every node, host network) hands pods their AWS credentials
# at these link-local addresses, port 80 (EKS user guide, "Pod Identity agent"): without this egress the
# AWS SDK in a build pod finds no credentials and every S3 call fails.
POD_IDENTITY_AGENT = ({"cidr": "169.254.170.23/32"}, {"cidr": "fd00:ec2::23/128"})
POD_IDENTITY_AGENT_PORT = 80


def network_policy_manifest(namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "engine-builds-egress-only", "namespace": namespace},
        "spec": {
            "pod_selector": {},
            "policy_types": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [
                {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                {"ports": [{"port": 443, "protocol": "TCP"}]},
                {
                    "to": [{"ip_block": block} for block in POD_IDENTITY_AGENT],
                    "ports": [{"port": POD_IDENTITY_AGENT_PORT, "protocol": "TCP"}],
                },
            ],
        },
    }


@dataclass(frozen=True)
class EngineBuildAccessArgs:
    cluster_name: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    region: str
    k8s_provider: k8s.Provider
    tags: Mapping[str, str] = field(default_factory=dict)
    namespace: str = "engine-builds"
    service_account: str = "engine-builder"
    store_prefix: str = ""


class EngineBuildAccess(pulumi.ComponentResource):
    def __init__(self, name: str, args: EngineBuildAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("platform:engines:EngineBuildAccess", name, None, opts)
        self.args = args
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", **namespace_manifest(args.namespace), opts=on_cluster
        )
        in_namespace = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider, depends_on=[self.namespace])
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            **service_account_manifest(args.namespace, args.service_account),
            opts=in_namespace,
        )
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy", **network_policy_manifest(args.namespace), opts=in_namespace
        )
        self.role = pod_identity_role(
            f"{name}-role",
            cluster_name=args.cluster_name,
            namespace=args.namespace,
            service_account=args.service_account,
            policy=pulumi.Output.all(args.bucket_arn, args.kms_key_arn).apply(
                lambda a: build_policy(a[0], a[1], args.region, args.store_prefix)
            ),
            tags=args.tags,
            parent=self,
            description=f"Engine builds ({args.namespace}/{args.service_account}): read sources, publish engines",
        )
        self.role_arn: pulumi.Output[str] = self.role.arn
        self.register_outputs(
            {"namespace": args.namespace, "serviceAccount": args.service_account, "roleArn": self.role_arn}
        )

    def runner_settings(self) -> dict[str, Any]:
        """``runner_settings`` for ``declare_engines``: builds run in this namespace as this account."""
        return {
            "namespace": self.args.namespace,
            "service_account": self.args.service_account,
            "aws_region": self.args.region,
        }
