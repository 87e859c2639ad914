"""IAM roles for AWS services and for pods (EKS Pod Identity), with AWS-managed policies only.

Every workload gets its own role (no shared node credentials, no static keys); these helpers keep
the trust policies in one place so a reviewer checks them once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

# The EKS Pod Identity agent assumes roles for pods as this service principal; TagSession lets it
# attach the pod's namespace/service account as session tags (usable in ABAC conditions).
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"


def service_trust_policy(service: str, *, tag_session: bool = False) -> str:
    actions = ["sts:AssumeRole", "sts:TagSession"] if tag_session else ["sts:AssumeRole"]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}],
        },
        sort_keys=True,
    )


def role_with_managed_policies(
    name: str,
    *,
    trusted_service: str,
    policy_arns: Sequence[str],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    description: str,
) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
    """A role assumable by one AWS service principal, with the given managed policies attached.

    Returns the attachments too: whoever uses the role must depend on them, or the first call
    made with the role can race the attachment and fail with AccessDenied.
    """
    role = aws.iam.Role(
        name,
        assume_role_policy=service_trust_policy(trusted_service, tag_session=trusted_service == POD_IDENTITY_PRINCIPAL),
        description=description,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    attachments = [
        aws.iam.RolePolicyAttachment(
            f"{name}-{arn.rsplit('/', 1)[-1]}",
            role=role.name,
            policy_arn=arn,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for arn in policy_arns
    ]
    return role, attachments


def pod_identity_role(
    name: str,
    *,
    cluster_name: pulumi.Input[str],
    namespace: str,
    service_account: str,
    policy: pulumi.Input[str],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    description: str,
) -> aws.iam.Role:
    """A workload's own role: assumable only through EKS Pod Identity by ``namespace/service_account``,
    with one inline ``policy`` (least privilege, written next to the workload that needs it)."""
    role = aws.iam.Role(
        name,
        assume_role_policy=service_trust_policy(POD_IDENTITY_PRINCIPAL, tag_session=True),
        description=description,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    role_policy = aws.iam.RolePolicy(name, role=role.id, policy=policy, opts=pulumi.ResourceOptions(parent=parent))
    aws.eks.PodIdentityAssociation(
        name,
        cluster_name=cluster_name,
        namespace=namespace,
        service_account=service_account,
        role_arn=role.arn,
        tags=dict(tags),
        # Pods that start before the policy is attached would get AccessDenied on their first call.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[role_policy]),
    )
    return role
