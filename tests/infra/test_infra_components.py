"""Component building blocks and stack variants: subnet layout, kubeconfig, labels, an existing
VPC, deduplicated admins."""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import subprocess
import sys

import kubernetes
import pulumi
import pulumi_aws
import pytest
import yaml
from pydantic import ValidationError

from infra import scheduling
from infra.gpu_software import time_slicing_config
from infra.iam import pod_identity_role
from infra.kubeconfig import render_kubeconfig
from infra.network import plan_subnets
from infra.program import build_platform, settings_from_engine, stack_outputs
from platform_spec.settings import REPO_ROOT, GpuPool
from tests.pulumi_harness import PlatformMocks, run_stack
from tools.offline import DEPLOYER_ROLE_ARN

# --- subnet layout ------------------------------------------------------------------------------


@pytest.mark.parametrize("vpc_cidr", ["10.0.0.0/16", "10.30.0.0/18", "172.16.0.0/20"])
def test_subnet_layout_fits_six_azs_without_overlap(vpc_cidr):
    vpc = ipaddress.ip_network(vpc_cidr)
    zones = [f"us-east-1{c}" for c in "abcdef"]
    plans = plan_subnets(vpc_cidr, zones)
    networks = [ipaddress.ip_network(c) for p in plans for c in (p.public_cidr, p.private_cidr)]
    for index, net in enumerate(networks):
        assert net.subnet_of(vpc)
        assert not any(net.overlaps(other) for other in networks[index + 1 :])
    # Pods take VPC addresses: private subnets are 8x the public ones.
    assert (
        ipaddress.ip_network(plans[0].private_cidr).num_addresses
        == 8 * ipaddress.ip_network(plans[0].public_cidr).num_addresses
    )


def test_adding_an_az_never_renumbers_existing_subnets():
    two = plan_subnets("10.20.0.0/16", ["us-west-2a", "us-west-2b"])
    three = plan_subnets("10.20.0.0/16", ["us-west-2a", "us-west-2b", "us-west-2c"])
    assert three[:2] == two


def test_more_azs_than_the_layout_holds_is_an_error():
    with pytest.raises(ValueError, match="use at most 6"):
        plan_subnets("10.0.0.0/16", [f"z{i}" for i in range(7)])


# --- kubeconfig -----------------------------------------------------------------------------------


def test_kubeconfig_is_loadable_and_calls_aws_eks_get_token(tmp_path, monkeypatch):
    """The real Kubernetes client loads the kubeconfig and runs its exec plugin; a stand-in `aws`
    on PATH records its arguments and answers with an ExecCredential, as the AWS CLI would."""
    calls = tmp_path / "calls.json"
    fake_aws = tmp_path / "bin" / "aws"
    fake_aws.parent.mkdir()
    fake_aws.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"open({str(calls)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "print(json.dumps({'kind': 'ExecCredential', 'apiVersion': 'client.authentication.k8s.io/v1beta1',"
        " 'status': {'token': 'k8s-aws-v1.offline'}}))\n"
    )
    fake_aws.chmod(fake_aws.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{fake_aws.parent}{os.pathsep}{os.environ['PATH']}")

    document = render_kubeconfig("triton-platform-dev", "https://example.eks.amazonaws.com", "Q0E=", "us-west-2")
    path = tmp_path / "kubeconfig.json"
    path.write_text(json.dumps(document))

    contexts, current = kubernetes.config.list_kube_config_contexts(config_file=str(path))
    assert current["name"] == "triton-platform-dev"
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == "https://example.eks.amazonaws.com"
    assert configuration.api_key["BearerToken"] == "Bearer k8s-aws-v1.offline"
    assert json.loads(calls.read_text()) == [
        "--region",
        "us-west-2",
        "eks",
        "get-token",
        "--cluster-name",
        "triton-platform-dev",
        "--output",
        "json",
    ]


# --- labels and device-plugin config ----------------------------------------------------------------


def _pool(**changes) -> GpuPool:
    fields = {
        "name": "llm",
        "role": "llm",
        "instanceTypes": ["p5.48xlarge"],
        "gpuSku": "h100",
        "minSize": 0,
        "maxSize": 2,
        "desiredSize": 1,
    }
    return GpuPool.model_validate({**fields, **changes})


def test_pool_labels_merge_with_platform_labels():
    pool = _pool(labels={"team": "voice"})
    labels = scheduling.gpu_node_labels(pool)
    assert labels["team"] == "voice"
    assert labels[scheduling.GPU_SKU_LABEL] == "h100"
    assert labels[scheduling.COMPUTE_CAPABILITY_LABEL] == "9.0"
    assert scheduling.gpu_pool_selector(pool) == {"platform.io/pool": "llm", "platform.io/gpu-sku": "h100"}


def test_pool_labels_cannot_override_platform_labels():
    # The engine-build Jobs and Triton pods select on these labels: a pool must not be able to lie about its GPU.
    with pytest.raises(ValidationError, match="set by the platform"):
        _pool(labels={"team": "voice", scheduling.GPU_SKU_LABEL: "a100"})


@pytest.mark.parametrize("replicas", [2, 4])
def test_time_slicing_config_round_trips(replicas):
    config = yaml.safe_load(time_slicing_config(replicas))
    assert config["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": replicas}]
    assert config["sharing"]["timeSlicing"]["renameByDefault"] is False


# --- stack variants -------------------------------------------------------------------------------

EXISTING_VPC = {
    "vpcId": "vpc-0abc1234def567890",
    "publicSubnetIds": ["subnet-0pub1", "subnet-0pub2", "subnet-0pub3"],
    "privateSubnetIds": ["subnet-0priv1", "subnet-0priv2", "subnet-0priv3"],
}


def test_existing_vpc_is_used_and_its_subnets_tagged():
    run = run_stack("prod", overrides={"triton-platform:network.existingVpc": EXISTING_VPC})
    run.raise_error()
    for created in ("aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/natGateway:NatGateway"):
        assert run.of_type(created) == [], created
    assert run.outputs["vpcId"] == EXISTING_VPC["vpcId"]
    cluster_subnets = run.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]["subnetIds"]
    assert cluster_subnets == EXISTING_VPC["privateSubnetIds"]
    for group in run.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert group.inputs["subnetIds"] == EXISTING_VPC["privateSubnetIds"]
    tags = {(t.inputs["resourceId"], t.inputs["key"]): t.inputs["value"] for t in run.of_type("aws:ec2/tag:Tag")}
    for subnet in EXISTING_VPC["publicSubnetIds"]:
        assert tags[(subnet, "kubernetes.io/role/elb")] == "1"
        assert tags[(subnet, "kubernetes.io/cluster/triton-platform-prod")] == "shared"
    for subnet in EXISTING_VPC["privateSubnetIds"]:
        assert tags[(subnet, "kubernetes.io/role/internal-elb")] == "1"


def test_admin_principals_get_one_entry_each_including_the_deployer_once():
    admins = ["arn:aws:iam::123456789012:role/sre-oncall", DEPLOYER_ROLE_ARN]
    run = run_stack("dev", overrides={"triton-platform:cluster.adminPrincipalArns": admins})
    run.raise_error()
    principals = sorted(e.inputs["principalArn"] for e in run.of_type("aws:eks/accessEntry:AccessEntry"))
    assert principals == sorted(set(admins))
    assert len(run.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")) == 2


# --- no resource at import time ---------------------------------------------------------------------

_IMPORT_ALL = """
import importlib, json, pkgutil
import infra
from tools.offline import run_program
from platform_spec.settings import read_stack_config

def import_everything():
    for module in pkgutil.walk_packages(infra.__path__, "infra."):
        importlib.import_module(module.name)
    return {}

run = run_program(read_stack_config("dev"), stack="dev", program=import_everything)
if run.error is not None:
    raise run.error
print(json.dumps([f"{r.type} {r.name}" for r in run.registrations]))
"""


def test_importing_every_infra_module_declares_nothing():
    # In a fresh interpreter, so the modules really are imported under the mocks, not found cached.
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    declared = json.loads(result.stdout.strip().splitlines()[-1])
    assert declared == [], f"resources declared at import time: {declared}"


# --- the harness itself -----------------------------------------------------------------------------


def _failing_program():
    def explode(_):
        raise RuntimeError("apply failed in an earlier run")

    # The registration fails first, so the SDK stops before draining this pending apply.
    pulumi_aws.s3.Bucket("refused")
    pulumi.Output.from_input(1).apply(explode)
    return {}


def _refuse(mocks, args):
    raise RuntimeError("registration refused")


def test_a_failed_run_does_not_leak_into_the_next():
    failing_mocks = PlatformMocks("us-west-2", resources={"aws:s3/bucket:Bucket": _refuse})
    failed = run_stack("dev", program=_failing_program, mocks=failing_mocks)
    assert failed.error is not None
    clean = run_stack("dev")
    assert clean.error is None, clean.error
    assert clean.outputs["clusterName"] == "triton-platform-dev"


def _foundation_only():
    return stack_outputs(build_platform(settings_from_engine()))


def test_a_run_after_asyncio_run_elsewhere_in_the_process_still_works():
    import asyncio

    # asyncio.run closes its loop and leaves the thread without one (as a test or tool in the same
    # process may do); the SDK needs a loop the moment the first resource is constructed.
    asyncio.run(asyncio.sleep(0))
    run = run_stack("dev", program=_foundation_only)
    assert run.error is None, run.error
    assert run.outputs["clusterName"] == "triton-platform-dev"


# --- workload roles -------------------------------------------------------------------------------


def _platform_with_a_reader_and_a_writer():
    platform = build_platform(settings_from_engine())
    for workload, write in (("triton", False), ("engine-builder", True)):
        pod_identity_role(
            f"{platform.name}-{workload}",
            cluster_name=platform.cluster.name,
            namespace=workload,
            service_account=workload,
            policy=platform.stores.access_policy(write=write),
            tags=platform.tags,
            parent=platform.stores,
            description=f"{workload} (test)",
        )
    return stack_outputs(platform)


def test_workload_roles_are_pod_identity_only_and_least_privilege():
    run = run_stack("dev", program=_platform_with_a_reader_and_a_writer)
    run.raise_error()
    bucket_arn = run.one("aws:s3/bucket:Bucket").outputs["arn"]
    key_arn = run.one("aws:kms/key:Key", "triton-platform-dev-stores").outputs["arn"]
    roles = {r.outputs["arn"]: r for r in run.of_type("aws:iam/role:Role")}
    policies = {p.inputs["role"]: json.loads(p.inputs["policy"]) for p in run.of_type("aws:iam/rolePolicy:RolePolicy")}
    associations = {
        a.inputs["serviceAccount"]: a for a in run.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    }
    # The foundation's Cluster Autoscaler has its own role (node-group scaling, tests/triton/test_autoscaling.py).
    assert associations.pop("cluster-autoscaler").inputs["namespace"] == "kube-system"
    assert set(associations) == {"triton", "engine-builder"}
    for service_account, association in associations.items():
        assert association.inputs["namespace"] == service_account
        assert association.inputs["clusterName"] == "triton-platform-dev"
        role = roles[association.inputs["roleArn"]]
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
        policy = policies[role.id]
        actions = {
            a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        }
        resources = {s["Resource"] for s in policy["Statement"]}
        assert resources == {bucket_arn, f"{bucket_arn}/*", key_arn}
        writes = {"s3:PutObject", "s3:DeleteObject", "kms:GenerateDataKey"}
        assert (writes <= actions) is (service_account == "engine-builder")
        assert "s3:GetObject" in actions and "kms:Decrypt" in actions
        assert not any(a.endswith("*") for a in actions)
