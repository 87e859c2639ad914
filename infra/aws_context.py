"""Facts about the AWS account and region a stack deploys into, looked up once before anything
is declared.

These lookups decide the *shape* of the program (how many subnets, which principals get access
entries), so they are plain invokes resolved up front rather than Outputs: a region with too few
AZs fails here, before the first resource, with the key to change.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi_aws as aws

from platform_spec.settings import PROJECT, Settings, SettingsError


@dataclass(frozen=True)
class AwsContext:
    account_id: str
    partition: str  # "aws", "aws-us-gov", ...
    region: str
    dns_suffix: str  # "amazonaws.com"
    availability_zones: tuple[str, ...]  # the AZs the stack's subnets use, in order
    # The IAM principal running `pulumi up`, as an IAM ARN (an assumed-role session resolves to its
    # role): it gets an explicit cluster-admin access entry, because the implicit creator entry is off.
    deployer_arn: str

    def managed_policy(self, name: str) -> str:
        return f"arn:{self.partition}:iam::aws:policy/{name}"

    def eks_access_policy(self, name: str) -> str:
        return f"arn:{self.partition}:eks::aws:cluster-access-policy/{name}"


def lookup_aws_context(settings: Settings) -> AwsContext:
    """Resolve account, partition, deployer and AZs for ``settings`` (the default AWS provider's
    region is ``aws:region``, the same key ``settings.region`` was read from)."""
    identity = aws.get_caller_identity()
    # get_caller_identity returns the STS session ARN for assumed roles; access entries need the role.
    session = aws.iam.get_session_context(arn=identity.arn)
    partition = aws.get_partition()
    return AwsContext(
        account_id=identity.account_id,
        partition=partition.partition,
        region=settings.region,
        dns_suffix=partition.dns_suffix,
        availability_zones=_availability_zones(settings),
        deployer_arn=session.issuer_arn,
    )


def _availability_zones(settings: Settings) -> tuple[str, ...]:
    if settings.network.existing_vpc is not None:
        return ()  # the existing subnets already fix the AZs
    wanted = settings.network.az_count
    zones = aws.get_availability_zones(
        state="available",
        # Local Zones and Wavelength Zones are opt-in and carry no GPU instances; skip them.
        filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
    )
    names = sorted(zones.names)
    if len(names) < wanted:
        raise SettingsError(
            f"region {settings.region}",
            [
                f"{PROJECT}:network.azCount = {wanted}: region {settings.region} has only {len(names)} "
                f"available AZs ({', '.join(names)}); set azCount <= {len(names)} or choose another region"
            ],
        )
    return tuple(names[:wanted])
