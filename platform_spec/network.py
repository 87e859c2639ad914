"""Where a stack runs: its VPC (created or existing) and its cluster's API endpoint, admins and deployers.

Part of the stack config's settings tree (``platform_spec.settings``); errors name key, value and fix.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from platform_spec import versions
from platform_spec.config_model import ConfigModel


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"not an IPv4 CIDR block ({exc}); write it like 10.0.0.0/16") from None


# RFC 5737's documentation ranges: a placeholder in an example, never a real caller.
_DOCUMENTATION_RANGES = tuple(ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))
# An IAM role, the only principal kind the platform grants cluster admin (people assume roles; no user keys).
_ROLE_ARN = re.compile(r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")


def _caller_cidr(value: str) -> str:
    """A CIDR of real callers (the deploy runner, a VPN): not a documentation placeholder, not the internet."""
    cidr = _cidr(value)
    network = ipaddress.IPv4Network(cidr)
    if any(network.subnet_of(doc) for doc in _DOCUMENTATION_RANGES):
        raise ValueError(
            f"{cidr} is a documentation range (RFC 5737), not a real network; use the egress CIDR of the machine "
            "that runs pulumi up (e.g. your CI runner's NAT IP as a /32) or your VPN range"
        )
    if network.prefixlen == 0:
        raise ValueError("0.0.0.0/0 opens the Kubernetes API to the internet; list the CIDRs that need it")
    return cidr


class ExistingVpc(ConfigModel):
    """Deploy into a VPC that already exists instead of creating one."""

    vpc_id: str = Field(pattern=r"^vpc-[0-9a-f]{8,17}$")
    public_subnet_ids: list[str] = Field(min_length=1)
    private_subnet_ids: list[str] = Field(min_length=2)

    @field_validator("public_subnet_ids", "private_subnet_ids")
    @classmethod
    def _subnet_ids(cls, ids: list[str]) -> list[str]:
        bad = [i for i in ids if not i.startswith("subnet-")]
        if bad:
            raise ValueError(f"{bad} are not subnet ids; use ids like subnet-0abc1234")
        return ids


class NetworkSettings(ConfigModel):
    az_count: int = Field(ge=2, le=6)
    vpc_cidr: str = "10.0.0.0/16"
    # "single": one NAT gateway for the VPC (cheap, one AZ is a single point of failure);
    # "per-az": one per AZ so losing an AZ never cuts egress for the others.
    nat_gateways: Literal["single", "per-az"] = "single"
    existing_vpc: ExistingVpc | None = None
    # VPC flow logs (every flow, to a KMS-encrypted CloudWatch log group) of a VPC this stack creates.
    flow_log_retention_days: int = Field(default=90, ge=1, le=3653)

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr(cls, value: str) -> str:
        cidr = _cidr(value)
        prefix = ipaddress.IPv4Network(cidr).prefixlen
        if not 16 <= prefix <= 20:
            raise ValueError(f"prefix /{prefix} is outside /16../20; EKS needs room for pod IPs, use e.g. 10.0.0.0/16")
        return cidr


class ClusterSettings(ConfigModel):
    kubernetes_version: str = versions.KUBERNETES_VERSION
    endpoint_private_access: bool = True
    endpoint_public_access: bool = False
    public_access_cidrs: list[str] = Field(default_factory=list)
    # IAM roles granted cluster admin through access entries: the role that runs `pulumi up` (CI's deploy
    # role) and the operators' role. Never derived from the caller, so every identity plans the same.
    admin_principal_arns: list[str] = Field(default_factory=list)
    # Where `pulumi up` and operators reach the private API endpoint from: CIDRs (a VPN, a peered CI network)
    # and security groups (a runner inside the VPC) get HTTPS on the cluster security group.
    deployer_cidrs: list[str] = Field(default_factory=list)
    deployer_security_group_ids: list[str] = Field(default_factory=list)
    log_retention_days: int = Field(default=90, ge=1, le=3653)

    @field_validator("kubernetes_version")
    @classmethod
    def _pinned_minor(cls, version: str) -> str:
        if version != versions.KUBERNETES_VERSION:
            raise ValueError(
                f"the EKS add-ons in platform_spec/versions.py are pinned for Kubernetes "
                f"{versions.KUBERNETES_VERSION}; "
                f"use {versions.KUBERNETES_VERSION}, or bump KUBERNETES_VERSION and EKS_ADDONS together"
            )
        return version

    @field_validator("public_access_cidrs", "deployer_cidrs")
    @classmethod
    def _caller_cidrs(cls, values: list[str]) -> list[str]:
        return [_caller_cidr(v) for v in values]

    @field_validator("admin_principal_arns")
    @classmethod
    def _arns(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not _ROLE_ARN.match(v)]
        if bad:
            raise ValueError(
                f"{bad} are not IAM role ARNs; use arn:aws:iam::<12-digit account>:role/<name> (for people, the "
                "role they assume; an assumed-role session ARN is not a principal)"
            )
        return list(dict.fromkeys(values))

    @field_validator("deployer_security_group_ids")
    @classmethod
    def _security_groups(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not re.fullmatch(r"sg-[0-9a-f]{8,17}", v)]
        if bad:
            raise ValueError(f"{bad} are not security group ids; use ids like sg-0abc1234def567890")
        return values

    @model_validator(mode="after")
    def _endpoint(self) -> ClusterSettings:
        if not (self.endpoint_private_access or self.endpoint_public_access):
            raise ValueError("endpointPrivateAccess and endpointPublicAccess are both false; enable at least one")
        if self.endpoint_public_access and not self.public_access_cidrs:
            raise ValueError("endpointPublicAccess is true but publicAccessCidrs is empty; list the CIDRs allowed")
        return self
