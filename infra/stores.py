"""Where built artifacts live: the ECR repository for the Triton image and the S3 model store for
engines, checkpoints and the Triton model repository.

Settings: ``protect`` (Pulumi protect on the key, repository and bucket; a protected stack also
refuses to empty them on delete), ``tags``.

Both are encrypted with a customer-managed KMS key (rotation on). The repository has immutable
tags (a tag names one image forever, so a rollout is reproducible), scan on push, and a lifecycle
policy that removes untagged layers and caps the image count. The bucket is versioned, SSE-KMS
with bucket keys, owner-enforced (no ACLs), blocks every kind of public access, and its policy
refuses any request that is not TLS 1.2+.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

UNTAGGED_IMAGE_DAYS = 14
MAX_IMAGES = 200
NONCURRENT_VERSION_DAYS = 30  # a deleted or overwritten artifact stays recoverable this long
INCOMPLETE_UPLOAD_DAYS = 7


def ecr_lifecycle_policy() -> str:
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"expire untagged images after {UNTAGGED_IMAGE_DAYS} days",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": UNTAGGED_IMAGE_DAYS,
                    },
                    "action": {"type": "expire"},
                },
                {
                    # ECR requires the "any" rule to have the highest priority number (evaluated last).
                    "rulePriority": 2,
                    "description": f"keep the {MAX_IMAGES} most recent images",
                    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": MAX_IMAGES},
                    "action": {"type": "expire"},
                },
            ]
        },
        sort_keys=True,
    )


def tls_only_bucket_policy(bucket_arn: str) -> str:
    objects = f"{bucket_arn}/*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, objects],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
                {
                    "Sid": "DenyOutdatedTls",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, objects],
                    "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
                },
            ],
        },
        sort_keys=True,
    )


def model_store_access_policy(bucket_arn: str, key_arn: str, *, write: bool) -> str:
    """IAM policy for a workload that reads (Triton) or also writes (engine builds) the model store."""
    object_actions = ["s3:GetObject", "s3:GetObjectVersion"]
    key_actions = ["kms:Decrypt"]
    if write:
        object_actions += ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        key_actions += ["kms:GenerateDataKey"]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "ListModelStore", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
                {
                    "Sid": "ModelStoreObjects",
                    "Effect": "Allow",
                    "Action": object_actions,
                    "Resource": f"{bucket_arn}/*",
                },
                {"Sid": "ModelStoreKey", "Effect": "Allow", "Action": key_actions, "Resource": key_arn},
            ],
        },
        sort_keys=True,
    )


def model_store_bucket(name_prefix: str, account_id: str) -> str:
    """The model store's bucket name, ``<project>-<stack>-models-<account>``: fixed by the stack and the account
    (bucket names are global), so ``python -m tools.bootstrap`` can create it before the first `up`."""
    bucket = f"{name_prefix}-models-{account_id}"
    if len(bucket) > 63:
        raise ValueError(
            f"model store bucket name {bucket!r} is {len(bucket)} characters, over S3's 63; shorten the project "
            "or stack name"
        )
    return bucket


@dataclass(frozen=True)
class StoresArgs:
    name_prefix: str  # e.g. "triton-platform-dev"; the repository is "<prefix>/tritonserver"
    protect: bool
    tags: Mapping[str, str]
    bucket_name: str  # model_store_bucket(name_prefix, account)


class Stores(pulumi.ComponentResource):
    """KMS key, ECR repository and S3 model-store bucket of one stack."""

    def __init__(self, name: str, args: StoresArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("platform:stores:Stores", name, None, opts)
        tags = dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect)

        self.key = aws.kms.Key(
            f"{name}-stores",
            description=f"Encryption of the {args.name_prefix} image repository and model store",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=stateful,
        )
        aws.kms.Alias(
            f"{name}-stores", name=f"alias/{args.name_prefix}-stores", target_key_id=self.key.key_id, opts=child
        )

        self.repository = aws.ecr.Repository(
            f"{name}-tritonserver",
            name=f"{args.name_prefix}/tritonserver",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": self.key.arn}],
            force_delete=not args.protect,
            tags=tags,
            opts=stateful,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-tritonserver", repository=self.repository.name, policy=ecr_lifecycle_policy(), opts=child
        )

        # A name known before the first `up` (model_store_bucket), so the bootstrap can create it and put the
        # engine sources in it; the stack then adopts it. `import_` stays on: once the bucket is in the stack,
        # Pulumi treats it like any other resource (no second import). forceDestroy is Pulumi-only state that
        # an imported bucket does not carry: kept as imported, so adoption never fails on it.
        self.bucket = aws.s3.Bucket(
            f"{name}-models",
            bucket=args.bucket_name,
            force_destroy=not args.protect,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.protect, import_=args.bucket_name, ignore_changes=["forceDestroy"]
            ),
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-models",
            bucket=self.bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-models",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-models",
            bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-models",
            bucket=self.bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": self.key.arn,
                    },
                    # One data key per bucket instead of per object: far fewer KMS calls on engine reads.
                    "bucket_key_enabled": True,
                }
            ],
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-models",
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(tls_only_bucket_policy),
            # S3 rejects policy writes while the public-access block is being changed.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access_block]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-models",
            bucket=self.bucket.id,
            rules=[
                {
                    "id": "expire-noncurrent-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_VERSION_DAYS},
                },
                {
                    "id": "abort-incomplete-uploads",
                    "status": "Enabled",
                    "filter": {},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": INCOMPLETE_UPLOAD_DAYS},
                },
            ],
            opts=child,
        )

        self.repository_url: pulumi.Output[str] = self.repository.repository_url
        self.bucket_arn: pulumi.Output[str] = self.bucket.arn
        self.bucket_name: pulumi.Output[str] = self.bucket.bucket
        self.register_outputs(
            {
                "repositoryUrl": self.repository_url,
                "bucket": self.bucket_name,
                "kmsKeyArn": self.key.arn,
            }
        )

    def access_policy(self, *, write: bool) -> pulumi.Output[str]:
        """The model-store policy for a workload role (see ``infra.iam.pod_identity_role``)."""
        return pulumi.Output.all(self.bucket.arn, self.key.arn).apply(
            lambda arns: model_store_access_policy(arns[0], arns[1], write=write)
        )
