"""The KMS key that encrypts the stack's CloudWatch log groups (EKS control-plane logs, VPC flow logs).

CloudWatch Logs encrypts with a customer key only when the key policy lets the regional Logs service use
it; the grant is limited to this account's log groups through the encryption context Logs sends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from infra.aws_context import AwsContext


def log_key_policy(ctx: AwsContext) -> str:
    account_root = f"arn:{ctx.partition}:iam::{ctx.account_id}:root"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministersTheKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": account_root},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CloudWatchLogsEncryptsThisAccountsLogGroups",
                    "Effect": "Allow",
                    "Principal": {"Service": f"logs.{ctx.region}.{ctx.dns_suffix}"},
                    "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                               "kms:Describe*"],  # fmt: skip
                    "Resource": "*",
                    "Condition": {
                        "ArnLike": {
                            "kms:EncryptionContext:aws:logs:arn": (
                                f"arn:{ctx.partition}:logs:{ctx.region}:{ctx.account_id}:log-group:*"
                            )
                        }
                    },
                },
            ],
        },
        sort_keys=True,
    )


def log_encryption_key(
    name: str, ctx: AwsContext, tags: Mapping[str, str], protect: bool, opts: pulumi.ResourceOptions | None = None
) -> aws.kms.Key:
    key = aws.kms.Key(
        f"{name}-logs",
        description=f"Encryption of the {name} CloudWatch log groups (control plane, VPC flow logs)",
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=log_key_policy(ctx),
        tags=dict(tags),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect)),
    )
    aws.kms.Alias(f"{name}-logs", name=f"alias/{name}-logs", target_key_id=key.key_id, opts=opts)
    return key
