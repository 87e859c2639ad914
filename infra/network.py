"""The VPC the cluster runs in: created per stack, or an existing one taken from the config.

Settings: ``network.vpcCidr``, ``network.azCount``, ``network.natGateways``, ``network.existingVpc``.

A created VPC gets, per AZ, one public subnet (load balancers, NAT gateways) and one large private
subnet (nodes and pods: the VPC CNI gives every pod a VPC address, so private subnets get most of
the space). Subnets carry the tags the AWS load balancer controller discovers them by. Egress from
private subnets goes through one NAT gateway ("single") or one per AZ ("per-az"), and S3 traffic
(engines, model artifacts) through a free gateway endpoint instead of paid NAT bandwidth.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.iam import service_trust_policy
from platform_spec.settings import NetworkSettings

ELB_ROLE_TAG = "kubernetes.io/role/elb"  # internet-facing load balancers go here
INTERNAL_ELB_ROLE_TAG = "kubernetes.io/role/internal-elb"  # internal load balancers go here

# Private subnets take /(vpc+3) blocks (up to 6 of the 8); public subnets are carved from the last
# block at /(vpc+6), which leaves block 7 free for later use (e.g. pod-only subnets).
_PRIVATE_EXTRA_BITS = 3
_PUBLIC_EXTRA_BITS = 6


def cluster_tag_key(cluster_name: str) -> str:
    return f"kubernetes.io/cluster/{cluster_name}"


@dataclass(frozen=True)
class SubnetPlan:
    availability_zone: str
    public_cidr: str
    private_cidr: str
    availability_zone_id: str | None = None  # the physical zone the subnets are pinned to


def plan_subnets(
    vpc_cidr: str, availability_zones: Sequence[str], zone_ids: Sequence[str] | None = None
) -> list[SubnetPlan]:
    """Deterministic subnet layout: the same CIDR and AZs always give the same subnets, so adding an
    AZ later never renumbers the existing ones."""
    vpc = ipaddress.IPv4Network(vpc_cidr)
    blocks = list(vpc.subnets(prefixlen_diff=_PRIVATE_EXTRA_BITS))
    public_pool = list(blocks[-1].subnets(new_prefix=vpc.prefixlen + _PUBLIC_EXTRA_BITS))
    if len(availability_zones) > len(blocks) - 2:
        raise ValueError(f"{len(availability_zones)} AZs do not fit the layout of {vpc_cidr}; use at most 6")
    ids = list(zone_ids) if zone_ids else [None] * len(availability_zones)
    return [
        SubnetPlan(az, str(public_pool[i]), str(blocks[i]), ids[i]) for i, az in enumerate(availability_zones)
    ]


def _zone(plan: SubnetPlan) -> dict[str, str]:
    # By zone ID when known: a zone name means a different physical zone in every account.
    if plan.availability_zone_id:
        return {"availability_zone_id": plan.availability_zone_id}
    return {"availability_zone": plan.availability_zone}


@dataclass(frozen=True)
class NetworkArgs:
    settings: NetworkSettings
    cluster_name: str  # subnets are tagged as shared with this cluster
    region: str
    availability_zones: Sequence[str]  # ignored for an existing VPC
    tags: Mapping[str, str]
    availability_zone_ids: Sequence[str] = ()  # the same zones by ID: subnets are pinned to these
    log_kms_key_arn: pulumi.Input[str] | None = None  # encrypts the flow-log group


class Network(pulumi.ComponentResource):
    """A VPC with public and private subnets across AZs, or the subnets of an existing VPC."""

    vpc_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("platform:network:Network", name, None, opts)
        self._name = name
        self._args = args
        if args.settings.existing_vpc is None:
            self._create_vpc()
        else:
            self._adopt_existing_vpc()
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "publicSubnetIds": self.public_subnet_ids,
                "privateSubnetIds": self.private_subnet_ids,
            }
        )

    def _tags(self, name: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**self._args.tags, "Name": name, **(extra or {})}

    def _create_vpc(self) -> None:
        name, args = self._name, self._args
        child = pulumi.ResourceOptions(parent=self)
        shared = {cluster_tag_key(args.cluster_name): "shared"}

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.settings.vpc_cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,  # EKS private endpoint resolution needs DNS hostnames
            tags=self._tags(f"{name}-vpc"),
            opts=child,
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=self._tags(f"{name}-igw"), opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags=self._tags(f"{name}-public-rt"),
            opts=child,
        )

        plans = plan_subnets(args.settings.vpc_cidr, args.availability_zones, args.availability_zone_ids)
        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        for plan in plans:
            az = plan.availability_zone
            public = aws.ec2.Subnet(
                f"{name}-public-{az}",
                vpc_id=vpc.id,
                cidr_block=plan.public_cidr,
                **_zone(plan),
                map_public_ip_on_launch=False,  # nothing but NAT gateways and LBs lives here
                tags=self._tags(f"{name}-public-{az}", {**shared, ELB_ROLE_TAG: "1"}),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{az}", subnet_id=public.id, route_table_id=public_rt.id, opts=child
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{az}",
                vpc_id=vpc.id,
                cidr_block=plan.private_cidr,
                **_zone(plan),
                tags=self._tags(f"{name}-private-{az}", {**shared, INTERNAL_ELB_ROLE_TAG: "1"}),
                opts=child,
            )
            public_subnets.append(public)
            private_subnets.append(private)

        nat_count = len(plans) if args.settings.nat_gateways == "per-az" else 1
        nat_gateways = []
        for plan, public in list(zip(plans, public_subnets, strict=True))[:nat_count]:
            az = plan.availability_zone
            eip = aws.ec2.Eip(f"{name}-nat-{az}", domain="vpc", tags=self._tags(f"{name}-nat-{az}"), opts=child)
            nat_gateways.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{az}",
                    allocation_id=eip.id,
                    subnet_id=public.id,
                    tags=self._tags(f"{name}-nat-{az}"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )

        private_route_tables = []
        for index, (plan, private) in enumerate(zip(plans, private_subnets, strict=True)):
            az = plan.availability_zone
            # With one NAT gateway every AZ routes through it; with one per AZ each AZ uses its own,
            # so losing an AZ never cuts the others' egress.
            nat = nat_gateways[index if nat_count > 1 else 0]
            route_table = aws.ec2.RouteTable(
                f"{name}-private-{az}",
                vpc_id=vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags=self._tags(f"{name}-private-{az}"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{az}", subnet_id=private.id, route_table_id=route_table.id, opts=child
            )
            private_route_tables.append(route_table)

        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_route_tables],
            tags=self._tags(f"{name}-s3"),
            opts=child,
        )

        self._flow_logs(vpc.id)

        self.vpc_id = vpc.id
        self.public_subnet_ids = [s.id for s in public_subnets]
        self.private_subnet_ids = [s.id for s in private_subnets]

    def _flow_logs(self, vpc_id: pulumi.Input[str]) -> None:
        """Every flow of the VPC (accepted and rejected) to an encrypted CloudWatch log group: what an incident
        review or a NetworkPolicy debugging session reads."""
        name, args = self._name, self._args
        child = pulumi.ResourceOptions(parent=self)
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/aws/vpc/{args.cluster_name}/flow-logs",
            retention_in_days=args.settings.flow_log_retention_days,
            kms_key_id=args.log_kms_key_arn,
            tags=self._tags(f"{name}-flow-logs"),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs",
            description=f"VPC flow logs of {args.cluster_name} -> CloudWatch Logs",
            assume_role_policy=service_trust_policy("vpc-flow-logs.amazonaws.com"),
            tags=dict(args.tags),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=group.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                                "Resource": [arn, f"{arn}:*"],
                            }
                        ],
                    },
                    sort_keys=True,
                )
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=vpc_id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=self._tags(f"{name}-flow-logs"),
            opts=child,
        )

    def _adopt_existing_vpc(self) -> None:
        name, args = self._name, self._args
        existing = args.settings.existing_vpc
        assert existing is not None
        # Load balancers find subnets by these tags; add them to the existing subnets (aws.ec2.Tag
        # manages one tag and leaves every other tag on the subnet alone).
        tag_sets = [(s, ELB_ROLE_TAG) for s in existing.public_subnet_ids] + [
            (s, INTERNAL_ELB_ROLE_TAG) for s in existing.private_subnet_ids
        ]
        for subnet_id, role_tag in tag_sets:
            for key, value in ((role_tag, "1"), (cluster_tag_key(args.cluster_name), "shared")):
                aws.ec2.Tag(
                    f"{name}-{subnet_id}-{key.rsplit('/', 1)[-1]}",
                    resource_id=subnet_id,
                    key=key,
                    value=value,
                    opts=pulumi.ResourceOptions(parent=self),
                )
        self.vpc_id = pulumi.Output.from_input(existing.vpc_id)
        self.public_subnet_ids = [pulumi.Output.from_input(s) for s in existing.public_subnet_ids]
        self.private_subnet_ids = [pulumi.Output.from_input(s) for s in existing.private_subnet_ids]
