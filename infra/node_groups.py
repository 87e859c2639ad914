"""EKS managed node groups: one CPU group for add-ons and monitoring, one GPU group per pool.

Settings: ``systemNodeGroup`` (instance types, sizes, disk) and ``gpuPools[]`` (name, role,
instance types, GPU SKU, capacity type, sizes, disk, labels).

Every group launches through its own launch template, which requires IMDSv2 with a hop limit of
1 (a pod cannot reach the node's instance credentials; pods get their own roles through Pod
Identity) and an encrypted gp3 root volume sized by ``diskSizeGib`` (GPU nodes hold the Triton
image and the engines). GPU groups use the AL2023 NVIDIA AMI (driver and container toolkit
preinstalled), carry the ``nvidia.com/gpu=true:NoSchedule`` taint and the platform labels from
``infra.scheduling``, and have EKS node auto-repair on (GPU faults such as XID errors replace the
node). All groups share one node role with only the policies a kubelet needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra import scheduling
from infra.aws_context import AwsContext
from infra.iam import role_with_managed_policies
from platform_spec import versions
from platform_spec.settings import GpuPool, SystemNodeGroup

# The node role carries only what the kubelet itself needs: join the cluster and pull images.
# The CNI policy is NOT here: aws-node has its own Pod Identity role (infra.cluster), so no pod on
# the node can inherit permission to rewire the VPC's network interfaces.
NODE_ROLE_POLICIES = ["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"]

ROOT_DEVICE = "/dev/xvda"  # AL2023 AMIs (standard and NVIDIA) boot from this device


def launch_template_metadata_options() -> dict:
    return {
        "http_endpoint": "enabled",
        "http_tokens": "required",  # IMDSv2 only: no unauthenticated metadata reads (SSRF)
        "http_put_response_hop_limit": 1,  # the token cannot cross into a pod's network namespace
        "instance_metadata_tags": "disabled",
    }


def root_volume(disk_size_gib: int, *, gpu: bool) -> dict:
    ebs = {
        "volume_size": disk_size_gib,
        "volume_type": "gp3",
        "encrypted": "true",
        "delete_on_termination": "true",
    }
    if gpu:
        # A GPU node is not useful until the ~15 GB Triton image is pulled and engines are read; gp3's
        # baseline 125 MB/s makes that minutes, so GPU roots buy more throughput.
        ebs.update({"iops": 6000, "throughput": 500})
    return {"device_name": ROOT_DEVICE, "ebs": ebs}


@dataclass(frozen=True)
class NodeGroupsArgs:
    system: SystemNodeGroup
    gpu_pools: Sequence[GpuPool]
    cluster_name: pulumi.Input[str]
    kubernetes_version: pulumi.Input[str]  # nodes follow the control plane on upgrades
    subnet_ids: Sequence[pulumi.Input[str]]  # private subnets
    aws: AwsContext
    tags: Mapping[str, str]
    # Add-ons without which a node never becomes Ready (VPC CNI, kube-proxy, Pod Identity agent).
    after: Sequence[pulumi.Resource] = field(default_factory=list)


class NodeGroups(pulumi.ComponentResource):
    """The system node group and one managed node group per GPU pool."""

    system: aws.eks.NodeGroup
    gpu: dict[str, aws.eks.NodeGroup]

    def __init__(self, name: str, args: NodeGroupsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("platform:nodes:NodeGroups", name, None, opts)
        self._name = name
        self._args = args

        self.role, role_attachments = role_with_managed_policies(
            f"{name}-node",
            trusted_service="ec2.amazonaws.com",
            policy_arns=[args.aws.managed_policy(p) for p in NODE_ROLE_POLICIES],
            tags=args.tags,
            parent=self,
            description="EKS worker nodes (kubelet): join the cluster, pull images",
        )
        self._after = [*role_attachments, *args.after]

        system = args.system
        self.system = self._node_group(
            "system",
            instance_types=system.instance_types,
            ami_type=versions.SYSTEM_AMI_TYPE,
            capacity_type="ON_DEMAND",  # add-ons and monitoring must not vanish with a spot reclaim
            scaling=(system.min_size, system.max_size, system.desired_size),
            disk_size_gib=system.disk_size_gib,
            labels=scheduling.system_node_labels(),
            gpu=False,
        )
        self.gpu = {
            pool.name: self._node_group(
                f"gpu-{pool.name}",
                instance_types=pool.instance_types,
                ami_type=versions.GPU_AMI_TYPE,
                capacity_type=pool.capacity_type,
                scaling=(pool.min_size, pool.max_size, pool.desired_size),
                disk_size_gib=pool.disk_size_gib,
                labels=scheduling.gpu_node_labels(pool),
                gpu=True,
                capacity_reservation_id=pool.capacity_reservation_id,
            )
            for pool in args.gpu_pools
        }
        self.register_outputs(
            {
                "system": self.system.node_group_name,
                "gpu": {pool: group.node_group_name for pool, group in self.gpu.items()},
                "nodeRoleArn": self.role.arn,
            }
        )

    def _node_group(
        self,
        suffix: str,
        *,
        instance_types: Sequence[str],
        ami_type: str,
        capacity_type: str,
        scaling: tuple[int, int, int],
        disk_size_gib: int,
        labels: Mapping[str, str],
        gpu: bool,
        capacity_reservation_id: str | None = None,
    ) -> aws.eks.NodeGroup:
        name, args = f"{self._name}-{suffix}", self._args
        instance_tags = {**args.tags, "Name": name}
        template = aws.ec2.LaunchTemplate(
            name,
            description=f"EKS managed node group {name}: IMDSv2, encrypted {disk_size_gib} GiB root",
            metadata_options=launch_template_metadata_options(),
            block_device_mappings=[root_volume(disk_size_gib, gpu=gpu)],
            tag_specifications=[
                {"resource_type": "instance", "tags": instance_tags},
                {"resource_type": "volume", "tags": instance_tags},
            ],
            # An On-Demand Capacity Reservation (scarce p5/g6e capacity held for this pool): instances launch
            # into it, and into nothing else, so a pool never silently runs outside the reservation.
            capacity_reservation_specification=(
                {"capacity_reservation_target": {"capacity_reservation_id": capacity_reservation_id}}
                if capacity_reservation_id
                else None
            ),
            update_default_version=True,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        min_size, max_size, desired_size = scaling
        return aws.eks.NodeGroup(
            name,
            cluster_name=args.cluster_name,
            version=args.kubernetes_version,
            node_role_arn=self.role.arn,
            subnet_ids=list(args.subnet_ids),
            ami_type=ami_type,
            instance_types=list(instance_types),
            capacity_type=capacity_type,
            scaling_config={"min_size": min_size, "max_size": max_size, "desired_size": desired_size},
            update_config={"max_unavailable": 1},
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            labels=dict(labels),
            taints=[scheduling.GPU_TAINT] if gpu else None,
            node_repair_config={"enabled": True} if gpu else None,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=self._after,
                # desiredSize is the starting size; afterwards the cluster autoscaler owns it, and a
                # `pulumi up` must not undo a scale-out that is serving traffic.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )
