"""Facts about the AWS account and region a stack deploys into, looked up once before anything
is declared.

These lookups decide the *shape* of the program (how many subnets in which zones), so they are plain
invokes resolved up front rather than Outputs: a region with too few
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
    availability_zones: tuple[str, ...]  # the AZs the stack's subnets use, by name, in order
    availability_zone_ids: tuple[str, ...]  # the same zones by ID (what the subnets are pinned to)

    def managed_policy(self, name: str) -> str:
        return f"arn:{self.partition}:iam::aws:policy/{name}"

    def eks_access_policy(self, name: str) -> str:
        return f"arn:{self.partition}:eks::aws:cluster-access-policy/{name}"


def lookup_aws_context(settings: Settings) -> AwsContext:
    """Resolve account, partition, deployer and AZs for ``settings`` (the default AWS provider's
    region is ``aws:region``, the same key ``settings.region`` was read from)."""
    # Only the account is read from the caller: who runs `pulumi up` must not change what it plans (admins
    # come from cluster.adminPrincipalArns), or a preview under one role and an up under another differ.
    identity = aws.get_caller_identity()
    partition = aws.get_partition()
    names, zone_ids = _availability_zones(settings)
    return AwsContext(
        account_id=identity.account_id,
        partition=partition.partition,
        region=settings.region,
        dns_suffix=partition.dns_suffix,
        availability_zones=names,
        availability_zone_ids=zone_ids,
    )


def _availability_zones(settings: Settings) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The stack's zones, as (names, zone IDs): chosen by zone ID (the physical zone; names are shuffled
    per account), among the zones that offer every instance type of every GPU pool, lowest IDs first."""
    if settings.network.existing_vpc is not None:
        return (), ()  # the existing subnets already fix the AZs
    wanted = settings.network.az_count
    zones = aws.get_availability_zones(
        state="available",
        # Local Zones and Wavelength Zones are opt-in and carry no GPU instances; skip them.
        filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
    )
    name_of = dict(zip(zones.zone_ids, zones.names, strict=True))
    if len(name_of) < wanted:
        raise SettingsError(
            f"region {settings.region}",
            [
                f"{PROJECT}:network.azCount = {wanted}: region {settings.region} has only {len(name_of)} "
                f"available AZs ({', '.join(sorted(zones.names))}); set azCount <= {len(name_of)} or choose "
                "another region"
            ],
        )
    usable = set(name_of)
    problems = []
    for pool in settings.gpu_pools:
        offered = set(name_of)
        for instance_type in pool.instance_types:
            offerings = aws.ec2.get_instance_type_offerings(
                location_type="availability-zone-id",
                filters=[{"name": "instance-type", "values": [instance_type]}],
            )
            offered &= set(offerings.locations)
        if len(offered) < wanted:
            problems.append(
                f"{PROJECT}:gpuPools[{pool.name}].instanceTypes = {pool.instance_types}: offered together in "
                f"{len(offered)} zone(s) of {settings.region} ({', '.join(sorted(offered)) or 'none'}), fewer than "
                f"network.azCount = {wanted}; lower azCount, drop the type offered in fewer zones, or pick another "
                "region"
            )
        usable &= offered
    if not problems and len(usable) < wanted:
        problems.append(
            f"{PROJECT}:network.azCount = {wanted}: only {len(usable)} zone(s) of {settings.region} offer every GPU "
            f"pool's instance types ({', '.join(sorted(usable)) or 'none'}); lower azCount or change the pools' "
            "instanceTypes"
        )
    if problems:
        raise SettingsError(f"region {settings.region}", problems)
    chosen = sorted(usable)[:wanted]
    return tuple(name_of[z] for z in chosen), tuple(chosen)
