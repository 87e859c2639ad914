"""What stopped a real first `pulumi preview`/`up` on the AWS side, each with its fix held in place:
the same plan under every caller identity, zones chosen by ID where the GPU types are offered, and the
values only a team can set asked for by name before anything is declared."""

from __future__ import annotations

import json

import pytest

from platform_spec.settings import SettingsError, read_stack_config
from tests.pulumi_harness import run_stack
from tools.offline import ACCOUNT_ID, STAND_IN_ACCESS, PlatformMocks, run_program

SUBNET = "aws:ec2/subnet:Subnet"


def _caller(role: str):
    def identity(mocks, args):
        return {"accountId": ACCOUNT_ID, "arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role}/session",
                "userId": f"AROA{role.upper()}:session", "id": ACCOUNT_ID}  # fmt: skip

    return identity


def _plan(run) -> list[tuple[str, str]]:
    def plain(value):  # assets by their path, not their object identity
        return getattr(value, "path", None) or str(value)

    return sorted((r.urn, json.dumps(r.inputs, sort_keys=True, default=plain)) for r in run.registrations)


def test_a_read_only_preview_and_the_deploy_role_plan_the_same_resources():
    """`pulumi preview` under a read-only role and `pulumi up --plan` under the deploy role must agree."""
    runs = []
    for role in ("readonly-previewer", "platform-deployer"):
        mocks = PlatformMocks("us-west-2", calls={"aws:index/getCallerIdentity:getCallerIdentity": _caller(role)})
        run = run_stack("dev", mocks=mocks)
        run.raise_error()
        runs.append(run)
    assert _plan(runs[0]) == _plan(runs[1])


def test_zones_are_chosen_by_id_where_every_gpu_type_is_offered():
    # us-east-1: names a..f map to use1-az6..az1 in these mocks (names differ per account, IDs do not).
    offered = {"p5.48xlarge": ["use1-az2", "use1-az4", "use1-az5", "use1-az6"], "g6e.xlarge": ["use1-az2", "use1-az4",
               "use1-az5", "use1-az6"], "g6e.2xlarge": ["use1-az1", "use1-az2", "use1-az4", "use1-az5"]}  # fmt: skip
    run = run_stack("prod", mocks=PlatformMocks("us-east-1", offerings=offered))
    run.raise_error()
    zone_ids = {s.inputs["availabilityZoneId"] for s in run.of_type(SUBNET)}
    assert zone_ids == {"use1-az2", "use1-az4", "use1-az5"}  # the three lowest IDs offering every type
    # ...and named by the account's names for those zones (az2 = "e", az4 = "c", az5 = "b" here)
    assert {s.name.rsplit("-", 1)[-1] for s in run.of_type(SUBNET)} == {"1e", "1c", "1b"}


def test_a_pool_offered_in_too_few_zones_fails_naming_the_pool_and_the_zones():
    offered = {"p5.48xlarge": ["use1-az1", "use1-az3"]}
    run = run_stack("prod", mocks=PlatformMocks("us-east-1", offerings=offered))
    assert isinstance(run.error, SettingsError) and run.registrations == []
    message = str(run.error)
    assert "gpuPools[llm].instanceTypes = ['p5.48xlarge']: offered together in 2 zone(s) of us-east-1" in message
    assert "(use1-az1, use1-az3), fewer than network.azCount = 3" in message


def test_a_fresh_clone_names_what_the_team_must_set_before_any_resource():
    config = read_stack_config("prod")  # the stack file as shipped: no admins, no deployer path
    config["triton-platform:engines"] = {"sourcesLock": "tests/fixtures/sources.lock.synthetic.json"}
    run = run_program(config, stack="prod")
    assert isinstance(run.error, SettingsError) and run.registrations == []
    message = str(run.error)
    assert "cluster.adminPrincipalArns is empty" in message
    set_admin = "pulumi config set --path 'cluster.adminPrincipalArns[0]' arn:aws:iam::<account>:role/<deploy-role>"
    assert set_admin in message
    assert "no path for pulumi up to the Kubernetes API" in message and "cluster.deployerCidrs" in message


def test_a_pool_at_zero_nodes_can_still_build_its_engines():
    """dev's GPU pools start at zero nodes. Its engine-build Jobs are what make the Cluster Autoscaler add one:
    so the autoscaler is installed before any Engine, the Jobs select and tolerate exactly that pool's nodes,
    and the nodes carry the label that makes the autoscaler wait for their GPUs."""
    run = run_stack("dev")
    run.raise_error()
    groups = run.of_type("aws:eks/nodeGroup:NodeGroup")
    autoscaler = next(r for r in run.registrations if r.type == "platform:nodes:GpuNodeAutoscaler")
    release = next(r for r in run.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "cluster-autoscaler")
    assert release.parent == autoscaler.urn

    engines = run.of_type("pulumi-python:dynamic/engines:Engine")
    for engine in engines:
        # depends_on a component is recorded as its children: the chart release among them
        assert release.urn in engine.dependencies, engine.name
        pool = engine.inputs["runner"]["pool"]
        (group,) = [g for g in groups if g.inputs["labels"].get("platform.io/pool") == pool]
        assert group.inputs["scalingConfig"]["minSize"] == 0
        assert group.inputs["labels"]["k8s.amazonaws.com/accelerator"].startswith("nvidia-")
    # and the autoscaler itself lands on the system nodes, which exist before it
    system = next(g for g in groups if g.inputs["labels"].get("platform.io/pool") == "system")
    assert system.urn in release.dependencies


def test_a_gpu_pool_can_launch_into_its_capacity_reservation():
    run = run_stack("prod", overrides={"triton-platform:gpuPools[0].capacityReservationId": "cr-0123456789abcdef0"})
    run.raise_error()
    templates = {t.name: t for t in run.of_type("aws:ec2/launchTemplate:LaunchTemplate")}
    target = templates["triton-platform-prod-gpu-llm"].inputs["capacityReservationSpecification"]
    assert target == {"capacityReservationTarget": {"capacityReservationId": "cr-0123456789abcdef0"}}
    assert "capacityReservationSpecification" not in templates["triton-platform-prod-gpu-speech"].inputs


def test_a_reservation_on_a_mixed_or_spot_pool_is_refused():
    run = run_stack("dev", overrides={"triton-platform:gpuPools[1].capacityReservationId": "cr-0123456789abcdef0"})
    assert isinstance(run.error, SettingsError) and run.registrations == []
    message = str(run.error)
    assert "holds one instance type on demand" in message and "['g6.xlarge', 'g6.2xlarge'], SPOT" in message


CLUSTER = "aws:eks/cluster:Cluster"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_private_endpoint_admits_exactly_the_configured_deployers(stack):
    stack_run = run_stack(stack)
    stack_run.raise_error()
    """pulumi up reaches the private API over the cluster security group's HTTPS rule for each deployer CIDR
    (here the harness's stand-in), and the Kubernetes provider waits for those rules."""
    vpc = stack_run.one(CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is False and vpc["endpointPrivateAccess"] is True
    rules = stack_run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    api_rules = [r for r in rules if "-api-from-" in r.name]
    assert [r.inputs["cidrIpv4"] for r in api_rules] == STAND_IN_ACCESS["triton-platform:cluster.deployerCidrs"]
    for rule in api_rules:
        assert (rule.inputs["fromPort"], rule.inputs["toPort"], rule.inputs["ipProtocol"]) == (443, 443, "tcp")
        assert rule.inputs["securityGroupId"] == stack_run.one(CLUSTER).outputs["vpcConfig"]["clusterSecurityGroupId"]
    provider = next(r for r in stack_run.registrations if r.type == "pulumi:providers:kubernetes")
    assert {r.urn for r in api_rules} <= set(provider.dependencies)


def test_a_public_endpoint_is_limited_to_its_cidrs_and_security_groups_get_a_rule():
    run = run_stack("dev", overrides={
        "triton-platform:cluster.endpointPublicAccess": True,
        "triton-platform:cluster.publicAccessCidrs": ["52.10.20.30/32"],
        "triton-platform:cluster.deployerCidrs": [],
        "triton-platform:cluster.deployerSecurityGroupIds": ["sg-0123456789abcdef0"],
    })  # fmt: skip
    run.raise_error()
    vpc = run.one(CLUSTER).inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True and vpc["publicAccessCidrs"] == ["52.10.20.30/32"]
    (rule,) = [r for r in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") if "-api-" in r.name]
    assert rule.inputs["referencedSecurityGroupId"] == "sg-0123456789abcdef0" and rule.inputs["fromPort"] == 443


def test_prod_without_an_alertmanager_receiver_does_not_deploy():
    run = run_stack("prod", remove=["triton-platform:monitoring.alertmanagerConfigSecret"])
    assert isinstance(run.error, SettingsError) and run.registrations == []
    assert "monitoring.alertmanagerConfigSecret is unset: prod alerts would go to" in str(run.error)
    run = run_stack("prod", overrides={"triton-platform:monitoring.replicas": 1})
    assert isinstance(run.error, SettingsError) and "monitoring.replicas = 1: prod runs 2" in str(run.error)


def test_a_triton_pod_too_large_for_its_pool_fails_before_any_resource():
    run = run_stack("dev", overrides={"triton-platform:triton": {"pools": {"speech": {"memory": "40Gi"}}}})
    assert run.error is not None and run.registrations == []
    message = str(run.error)
    assert "triton.pools.speech: a pod asks 1500m CPU, 40Gi memory" in message
    assert "g6.xlarge (3.42 CPU, 13.5 GiB memory" in message
    assert "use larger instanceTypes for gpuPools[speech]" in message


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_vpc_flow_logs_and_control_plane_logs_are_kms_encrypted(stack):
    run = run_stack(stack)
    run.raise_error()
    key = run.one("aws:kms/key:Key", f"triton-platform-{stack}-logs")
    policy = json.loads(key.inputs["policy"])
    (logs,) = [s for s in policy["Statement"] if s["Principal"].get("Service", "").startswith("logs.")]
    assert logs["Principal"]["Service"] == f"logs.{run.config['aws:region']}.amazonaws.com"
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"].endswith(":log-group:*")
    groups = {g.inputs["name"]: g for g in run.of_type("aws:cloudwatch/logGroup:LogGroup")}
    for name in (f"/aws/eks/triton-platform-{stack}/cluster", f"/aws/vpc/triton-platform-{stack}/flow-logs"):
        assert groups[name].inputs["kmsKeyId"] == key.outputs["arn"], name
    (flow,) = run.of_type("aws:ec2/flowLog:FlowLog")
    assert flow.inputs["trafficType"] == "ALL" and flow.inputs["vpcId"] == run.one("aws:ec2/vpc:Vpc").id
    assert flow.inputs["logDestination"] == groups[f"/aws/vpc/triton-platform-{stack}/flow-logs"].outputs["arn"]
    role = next(r for r in run.of_type("aws:iam/role:Role") if r.name.endswith("-flow-logs"))
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "vpc-flow-logs.amazonaws.com"}  # fmt: skip
