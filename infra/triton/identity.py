"""The AWS identity of the Triton pods: one IAM role, assumable only by the ``triton`` service
account through IRSA, that can only read the published model repositories.

Why IRSA and not EKS Pod Identity (which the platform's add-ons use): Triton reads S3 with the AWS
SDK for C++ bundled in the server. The Triton 24.10 build (2.51, in the nvidia-pytriton wheel we ship
for local runs) carries aws-sdk-cpp 1.11.60, whose container credentials provider predates Pod
Identity's ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``; its web-identity provider (IRSA) is there and
is what Triton users run on EKS. IRSA needs no code in the image and works on every Triton release.

The policy: ``s3:GetObject`` on ``triton-repositories/*`` only; ``s3:ListBucket`` for any prefix under
``triton-repositories/`` (Triton lists a model's directory before downloading it) and for the prefix-less
HeadBucket Triton's S3 client opens with (so object names elsewhere are listable, their contents are
not); ``kms:Decrypt`` on the store's key only when called through S3 in the stack's region (the
bucket is SSE-KMS). Nothing else: not the engines, not the sources, no write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.triton.publication import REPOSITORIES_PREFIX


def irsa_trust_policy(oidc_provider_arn: str, oidc_issuer_url: str, namespace: str, service_account: str) -> str:
    """Trust policy: only ``system:serviceaccount:<namespace>:<service_account>`` via the cluster's OIDC."""
    issuer = oidc_issuer_url.removeprefix("https://")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": oidc_provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        },
        sort_keys=True,
    )


def repository_read_policy(bucket_arn: str, kms_key_arn: str, region: str) -> str:
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadPublishedRepositories",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{bucket_arn}/{REPOSITORIES_PREFIX}/*"],
        },
        {
            # Triton checks the bucket with HeadBucket (which needs s3:ListBucket and carries no prefix),
            # then lists the repository's prefix: any prefix given must be under the repositories.
            "Sid": "ListPublishedRepositories",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [bucket_arn],
            "Condition": {"StringLikeIfExists": {"s3:prefix": [f"{REPOSITORIES_PREFIX}/*"]}},
        },
        {
            "Sid": "GetBucketLocation",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": [bucket_arn],
        },
        {
            "Sid": "DecryptModelStoreThroughS3",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [kms_key_arn],
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


class TritonIdentity(pulumi.ComponentResource):
    """IAM role + inline read-only policy for the Triton service account (IRSA)."""

    def __init__(
        self,
        name: str,
        *,
        oidc_provider_arn: pulumi.Input[str],
        oidc_issuer_url: pulumi.Input[str],
        namespace: str,
        service_account: str,
        bucket_arn: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        region: str,
        tags: Mapping[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("platform:triton:TritonIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            f"{name}-role",
            description=f"Triton pods ({namespace}/{service_account}): read the published model repositories",
            assume_role_policy=pulumi.Output.all(oidc_provider_arn, oidc_issuer_url).apply(
                lambda a: irsa_trust_policy(a[0], a[1], namespace, service_account)
            ),
            max_session_duration=3600,
            tags=dict(tags),
            opts=child,
        )
        self.policy = aws.iam.RolePolicy(
            f"{name}-read-repositories",
            role=self.role.id,
            policy=pulumi.Output.all(bucket_arn, kms_key_arn).apply(
                lambda a: repository_read_policy(a[0], a[1], region)
            ),
            opts=child,
        )
        self.role_arn: pulumi.Output[str] = self.role.arn
        self.register_outputs({"roleArn": self.role_arn})
