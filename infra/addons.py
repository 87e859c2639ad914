"""EKS managed add-ons, pinned in ``platform_spec.versions.EKS_ADDONS``, and what the cluster needs once
nodes exist: cluster DNS and block storage.

The add-ons that make a node Ready (VPC CNI, kube-proxy, Pod Identity agent) are created with the
cluster, before any node group (see ``infra.cluster``); CoreDNS and the EBS CSI driver run as
Deployments and only turn healthy once nodes exist, so ``ClusterAddons`` is created after the node
groups. Settings: ``protect`` (reclaim policy of the default StorageClass).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.aws_context import AwsContext
from infra.iam import POD_IDENTITY_PRINCIPAL, role_with_managed_policies
from platform_spec import versions

# Monitoring's default ``storageClass`` is this name; PVCs that name no class get it too.
DEFAULT_STORAGE_CLASS = "gp3"


def managed_addon(
    name: str,
    *,
    cluster_name: pulumi.Input[str],
    addon_name: str,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    configuration: Mapping[str, Any] | None = None,
    pod_identity: tuple[pulumi.Input[str], str] | None = None,
    depends_on: Sequence[pulumi.Resource] = (),
) -> aws.eks.Addon:
    """One EKS add-on at its pinned version.

    ``pod_identity`` is (role ARN, service account): EKS creates the Pod Identity association with
    the add-on, so the add-on's pods get their own role instead of the node role's permissions.
    """
    return aws.eks.Addon(
        name,
        cluster_name=cluster_name,
        addon_name=addon_name,
        addon_version=versions.EKS_ADDONS[addon_name],
        configuration_values=json.dumps(configuration, sort_keys=True) if configuration else None,
        pod_identity_associations=(
            [{"role_arn": pod_identity[0], "service_account": pod_identity[1]}] if pod_identity else None
        ),
        # The program is the source of truth for add-on configuration: overwrite drift.
        resolve_conflicts_on_create="OVERWRITE",
        resolve_conflicts_on_update="OVERWRITE",
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def default_storage_class_manifest(reclaim_policy: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": DEFAULT_STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "ebs.csi.aws.com",
        "parameters": {"type": "gp3", "encrypted": "true", "fsType": "ext4"},
        "reclaim_policy": reclaim_policy,
        # Bind where the pod is scheduled: an EBS volume lives in one AZ.
        "volume_binding_mode": "WaitForFirstConsumer",
        "allow_volume_expansion": True,
    }


@dataclass(frozen=True)
class ClusterAddonsArgs:
    cluster_name: pulumi.Input[str]
    aws: AwsContext
    k8s_provider: k8s.Provider
    protect: bool
    tags: Mapping[str, str]
    # The node groups: these add-ons wait for them, or their Deployments never become healthy.
    after: Sequence[pulumi.Resource] = field(default_factory=list)


class ClusterAddons(pulumi.ComponentResource):
    """CoreDNS, the EBS CSI driver with its own Pod Identity role, and the default encrypted gp3
    StorageClass (EKS no longer marks any class default on new clusters)."""

    def __init__(self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("platform:addons:ClusterAddons", name, None, opts)
        after = list(args.after)

        self.coredns = managed_addon(
            f"{name}-coredns",
            cluster_name=args.cluster_name,
            addon_name="coredns",
            tags=args.tags,
            parent=self,
            depends_on=after,
        )

        ebs_role, ebs_attachments = role_with_managed_policies(
            f"{name}-ebs-csi",
            trusted_service=POD_IDENTITY_PRINCIPAL,
            policy_arns=[args.aws.managed_policy("service-role/AmazonEBSCSIDriverPolicy")],
            tags=args.tags,
            parent=self,
            description="EBS CSI controller (Pod Identity): creates and attaches EBS volumes",
        )
        self.ebs_csi = managed_addon(
            f"{name}-aws-ebs-csi-driver",
            cluster_name=args.cluster_name,
            addon_name="aws-ebs-csi-driver",
            tags=args.tags,
            parent=self,
            # The node DaemonSet must also run on tainted GPU nodes, or pods there cannot mount volumes.
            configuration={"node": {"tolerateAllTaints": True}},
            pod_identity=(ebs_role.arn, "ebs-csi-controller-sa"),
            depends_on=[*after, *ebs_attachments],
        )

        # Retain in protected stacks: deleting a PVC (e.g. Prometheus data) then keeps the volume.
        manifest = default_storage_class_manifest("Retain" if args.protect else "Delete")
        self.storage_class = k8s.storage.v1.StorageClass(
            f"{name}-{DEFAULT_STORAGE_CLASS}",
            **manifest,
            opts=pulumi.ResourceOptions(parent=self, provider=args.k8s_provider),
        )
        self.storage_class_name = DEFAULT_STORAGE_CLASS
        self.register_outputs({"storageClassName": DEFAULT_STORAGE_CLASS})
