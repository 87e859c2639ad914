"""Cluster Autoscaler for the managed node groups, with its Pod Identity role.

Part of the foundation, installed right after the node groups and before anything that needs a GPU node:
a GPU pool at ``minSize: 0`` gets its first node because a pending pod (an engine-build Job, then Triton)
asks for one. GPU nodes carry the ``k8s.amazonaws.com/accelerator`` label (``infra.scheduling``), which
tells the autoscaler to wait for their GPUs to become allocatable (the driver and the device plugin start
after the node joins) instead of launching more nodes meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.charts import release_chart
from infra.iam import POD_IDENTITY_PRINCIPAL, service_trust_policy
from infra.scheduling import system_node_labels
from platform_spec import versions

CLUSTER_AUTOSCALER_RELEASE = "cluster-autoscaler"
CLUSTER_AUTOSCALER_NAMESPACE = "kube-system"
CLUSTER_AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"


def cluster_autoscaler_values(cluster_name: pulumi.Input[str], region: str) -> dict[str, Any]:
    return {
        "cloudProvider": "aws",
        "awsRegion": region,
        # Finds the managed node groups' ASGs by the tags EKS puts on them.
        "autoDiscovery": {"clusterName": cluster_name},
        "rbac": {"serviceAccount": {"create": True, "name": CLUSTER_AUTOSCALER_SERVICE_ACCOUNT}},
        "extraArgs": {
            "balance-similar-node-groups": True,
            "expander": "least-waste",
            # Triton pods keep their downloaded repository in an emptyDir: still safe to move.
            "skip-nodes-with-local-storage": False,
            # GPU nodes take minutes to join (NVIDIA AMI, device plugin); do not give up early.
            "max-node-provision-time": "20m",
            "scale-down-unneeded-time": "10m",
            "scale-down-delay-after-add": "10m",
            "ignore-daemonsets-utilization": True,
        },
        "nodeSelector": system_node_labels(),
        "priorityClassName": "system-cluster-critical",
        # Two replicas, one active (the autoscaler elects a leader by default): a drained or lost system node does
        # not stop GPU scale-ups; the chart's PodDisruptionBudget keeps one running.
        "replicaCount": 2,
        # Sized for a few dozen nodes and pods; a memory limit against leaks, no CPU limit (throttling the
        # autoscaler only delays scale-ups).
        "resources": {"requests": {"cpu": "100m", "memory": "300Mi"}, "limits": {"memory": "1Gi"}},
        # The image needs nothing of root: nobody's UID, the runtime's default seccomp profile.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containerSecurityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
    }


def cluster_autoscaler_policy(cluster_name: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Discover",
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:DescribeAutoScalingGroups",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLaunchConfigurations",
                        "autoscaling:DescribeScalingActivities",
                        "autoscaling:DescribeTags",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplateVersions",
                        "ec2:GetInstanceTypesFromInstanceRequirements",
                        "eks:DescribeNodegroup",
                    ],
                    "Resource": ["*"],
                },
                {
                    "Sid": "ScaleOwnGroupsOnly",
                    "Effect": "Allow",
                    "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                    "Resource": ["*"],
                    "Condition": {
                        "StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}
                    },
                },
            ],
        },
        sort_keys=True,
    )


class GpuNodeAutoscaler(pulumi.ComponentResource):
    """Cluster Autoscaler for the managed node groups, with its Pod Identity role."""

    def __init__(
        self,
        name: str,
        *,
        cluster_name: pulumi.Input[str],
        region: str,
        k8s_provider: k8s.Provider,
        tags: Mapping[str, str],
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("platform:nodes:GpuNodeAutoscaler", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-role",
            description="Cluster Autoscaler: resize this cluster's managed node groups",
            assume_role_policy=service_trust_policy(POD_IDENTITY_PRINCIPAL, tag_session=True),
            tags=dict(tags),
            opts=child,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-scale-node-groups",
            role=role.id,
            policy=pulumi.Output.from_input(cluster_name).apply(cluster_autoscaler_policy),
            opts=child,
        )
        association = aws.eks.PodIdentityAssociation(
            f"{name}-pod-identity",
            cluster_name=cluster_name,
            namespace=CLUSTER_AUTOSCALER_NAMESPACE,
            service_account=CLUSTER_AUTOSCALER_SERVICE_ACCOUNT,
            role_arn=role.arn,
            tags=dict(tags),
            opts=child,
        )
        chart = versions.CLUSTER_AUTOSCALER_CHART
        self.release = k8s.helm.v3.Release(
            f"{name}-cluster-autoscaler",
            name=CLUSTER_AUTOSCALER_RELEASE,
            **release_chart(chart),
            namespace=CLUSTER_AUTOSCALER_NAMESPACE,
            values=cluster_autoscaler_values(cluster_name, region),
            cleanup_on_fail=True,
            max_history=10,
            timeout=600,
            # The first AWS call must find the role's permissions and the association in place.
            # ``after``: the system nodes it runs on and the add-ons they need.
            opts=pulumi.ResourceOptions(
                parent=self, provider=k8s_provider, depends_on=[policy, association, *after]
            ),
        )
        self.role_arn = role.arn
        self.register_outputs({"roleArn": role.arn})
