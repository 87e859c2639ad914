"""An invalid stack config fails before any resource is declared, naming key, value and fix."""

from __future__ import annotations

import pytest

from platform_spec.settings import SettingsError
from tests.pulumi_harness import PlatformMocks, run_stack

# (stack, overrides, removed keys, text the message must contain: the key, the value, the fix)
CASES = {
    "min-greater-than-max": (
        "dev",
        {"triton-platform:gpuPools[0].minSize": 3},
        (),
        ["triton-platform:gpuPools[0]", "minSize 3 > maxSize 2", "make minSize <= maxSize"],
    ),
    "desired-outside-bounds": (
        "prod",
        {"triton-platform:systemNodeGroup.desiredSize": 9},
        (),
        ["triton-platform:systemNodeGroup", "desiredSize 9", "[minSize 3, maxSize 6]"],
    ),
    "non-gpu-instance-in-gpu-pool": (
        "dev",
        {"triton-platform:gpuPools[1].instanceTypes": ["m7i.xlarge"]},
        (),
        ["triton-platform:gpuPools[1]", "'m7i.xlarge' has no GPU", "use a GPU family"],
    ),
    "instance-of-another-gpu": (
        "prod",
        {"triton-platform:gpuPools[0].instanceTypes": ["g6e.48xlarge"]},
        (),
        ["triton-platform:gpuPools[0]", "'g6e.48xlarge' carries l40s", "gpuSku 'h100'"],
    ),
    "prod-with-two-azs": (
        "prod",
        {"triton-platform:network.azCount": 2},
        (),
        ["network.azCount = 2", "prod needs at least 3 AZs", "set azCount: 3 or more"],
    ),
    "prod-with-public-endpoint": (
        "prod",
        {
            "triton-platform:cluster.endpointPublicAccess": True,
            "triton-platform:cluster.publicAccessCidrs": ["52.10.0.0/16"],
        },
        (),
        ["cluster.endpointPublicAccess = true", "set endpointPublicAccess: false"],
    ),
    "api-open-to-the-internet": (
        "dev",
        {
            "triton-platform:cluster.endpointPublicAccess": True,
            "triton-platform:cluster.publicAccessCidrs": ["0.0.0.0/0"],
        },
        (),
        ['cluster.publicAccessCidrs = ["0.0.0.0/0"]', "opens the Kubernetes API to the internet"],
    ),
    "documentation-range-as-deployer": (
        "dev",
        {"triton-platform:cluster.deployerCidrs": ["203.0.113.0/24"]},
        (),
        ['cluster.deployerCidrs = ["203.0.113.0/24"]', "documentation range (RFC 5737)", "egress CIDR"],
    ),
    "admin-not-a-role": (
        "dev",
        {"triton-platform:cluster.adminPrincipalArns": ["arn:aws:iam::123456789012:user/alice"]},
        (),
        ["cluster.adminPrincipalArns", "are not IAM role ARNs", "arn:aws:iam::<12-digit account>:role/<name>"],
    ),
    "deployer-security-group-malformed": (
        "prod",
        {"triton-platform:cluster.deployerSecurityGroupIds": ["runner-sg"]},
        (),
        ["cluster.deployerSecurityGroupIds", "are not security group ids"],
    ),
    "malformed-vpc-cidr": (
        "dev",
        {"triton-platform:network.vpcCidr": "10.20.0.0/33"},
        (),
        ["triton-platform:network.vpcCidr", '"10.20.0.0/33"', "write it like 10.0.0.0/16"],
    ),
    "cidr-with-host-bits": (
        "dev",
        {"triton-platform:network.vpcCidr": "10.20.1.0/16"},
        (),
        ["triton-platform:network.vpcCidr", '"10.20.1.0/16"', "host bits set"],
    ),
    "malformed-public-access-cidr": (
        "dev",
        {"triton-platform:cluster.publicAccessCidrs": ["office"]},
        (),
        ["triton-platform:cluster.publicAccessCidrs", '"office"', "write it like 10.0.0.0/16"],
    ),
    "missing-required-key": (
        "dev",
        {},
        ["triton-platform:systemNodeGroup"],
        ["triton-platform:systemNodeGroup", "required key is missing", "add it to the stack config"],
    ),
    "missing-region": (
        "prod",
        {},
        ["aws:region"],
        ["aws:region", "required key is missing"],
    ),
    "unknown-nested-key": (
        "dev",
        {"triton-platform:network.natGateway": "single"},
        (),
        ["triton-platform:network.natGateway", '"single"', "unknown key", "fix its spelling"],
    ),
    "unknown-top-level-key": (
        "prod",
        {"triton-platform:gpuPool": []},
        (),
        ["triton-platform:gpuPool", "unknown key"],
    ),
    "unknown-gpu-sku": (
        "dev",
        {"triton-platform:gpuPools[0].gpuSku": "rtx4090"},
        (),
        ["triton-platform:gpuPools[0].gpuSku", '"rtx4090"', "use one of"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_setting_fails_before_any_resource(case):
    stack, overrides, removed, expected = CASES[case]
    run = run_stack(stack, overrides=overrides, remove=removed)
    assert isinstance(run.error, SettingsError), run.error
    assert run.registrations == [], "a resource was declared before the config was rejected"
    assert run.outputs == {}
    message = str(run.error)
    for text in expected:
        assert text in message, f"{text!r} missing from:\n{message}"


def test_region_without_enough_azs_fails_before_any_resource():
    run = run_stack("prod", mocks=PlatformMocks("us-east-1", zone_count=2))
    assert isinstance(run.error, SettingsError)
    assert run.registrations == []
    message = str(run.error)
    assert "triton-platform:network.azCount = 3" in message
    assert "us-east-1 has only 2 available AZs" in message
    assert "set azCount <= 2" in message


def test_the_unmodified_stacks_are_valid():
    # The cases above differ from a stack that deploys by exactly their override.
    for stack in ("dev", "prod"):
        run = run_stack(stack)
        assert run.error is None
        assert run.registrations


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"triton-platform:gpuPools[0].capacityReservationId": "reservation-1"},
            ['gpuPools[0].capacityReservationId = "reservation-1"', "like cr-0123456789abcdef0"],
        ),
        (
            {"triton-platform:gpuPools[0].instanceTypes": ["g6e.3xlarge"]},
            ["g6e.3xlarge", "no known shape", "platform_spec.gpus.INSTANCE_TYPES"],
        ),
    ],
)
def test_new_pool_keys_name_the_key_the_value_and_the_fix(override, expected):
    run = run_stack("dev", overrides=override)
    assert isinstance(run.error, SettingsError) and run.registrations == []
    for text in expected:
        assert text in str(run.error)
