"""The policy pack runs as the Pulumi CLI runs it, in its own virtualenv, and enforces every rule.

The CLI starts a Python pack with ``python -m pulumi.policy <engine> <pack dir>`` inside the virtualenv
named by ``PulumiPolicy.yaml`` (``policy/.venv``), reads the gRPC port the pack prints, then speaks the
Analyzer protocol to it: GetAnalyzerInfo, Configure, Analyze (one resource) and AnalyzeStack. These
tests do exactly that against the real pack process, with the protocol stubs of the program's Pulumi
SDK, so they prove the pack constructs, loads every policy as MANDATORY, and reports violations the
way ``pulumi preview`` would show them.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2 as pb
from pulumi.runtime.proto import analyzer_pb2_grpc as pb_grpc

from policy import rules

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "policy"
PACK_PYTHON = PACK / ".venv" / "bin" / "python"
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's marker for a not-yet-known string
DIGEST = "sha256:" + "0f" * 32
STACK_URN = "urn:pulumi:ci::triton-platform::"


def _start_pack(extra_env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    if not PACK_PYTHON.is_file():
        pytest.fail(
            f"{PACK_PYTHON} is missing: create the policy pack's virtualenv with\n"
            "  python3 -m venv policy/.venv && policy/.venv/bin/pip install -r policy/requirements.txt"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env.update({"PULUMI_PROJECT": "triton-platform", "PULUMI_DRY_RUN": "true", **extra_env})
    proc = subprocess.Popen(
        [str(PACK_PYTHON), "-u", "-m", "pulumi.policy", "127.0.0.1:0", "."],
        cwd=PACK,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    port_line: list[str] = []
    reader = threading.Thread(target=lambda: port_line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=30)
    if not port_line or not port_line[0].strip().isdigit():
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"policy pack did not start (printed {port_line!r}):\n{err}")
    return proc, int(port_line[0])


@pytest.fixture(scope="module")
def prod_pack():
    """The pack as the CLI starts it for the prod stack: stack config says environment=prod."""
    proc, port = _start_pack(
        {
            "PULUMI_STACK": "prod",
            "PULUMI_CONFIG": json.dumps({"triton-platform:environment": "prod", "aws:region": "us-east-1"}),
        }
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.AnalyzerStub(channel)
    finally:
        channel.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _struct(value: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def _analyze(stub, resource_type: str, props: dict, name: str = "r") -> list[pb.AnalyzeDiagnostic]:
    request = pb.AnalyzeRequest(
        type=resource_type,
        properties=_struct(props),
        urn=f"{STACK_URN}{resource_type}::{name}",
        name=name,
    )
    return list(stub.Analyze(request).diagnostics)


def test_pack_serves_every_rule_as_mandatory(prod_pack):
    info = prod_pack.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "triton-platform-guardrails"
    levels = {p.name: pb.EnforcementLevel.Name(p.enforcementLevel) for p in info.policies}
    assert set(levels) == set(rules.RULE_NAMES)
    assert set(levels.values()) == {"MANDATORY"}
    kinds = {p.name: p.policy_type for p in info.policies}
    assert kinds["s3-buckets-encrypted-versioned-private"] == pb.PolicyType.POLICY_TYPE_STACK
    assert kinds["imdsv2-hop-limit-1"] == pb.PolicyType.POLICY_TYPE_RESOURCE


def test_pack_reports_launch_template_violations(prod_pack):
    found = _analyze(
        prod_pack,
        rules.LAUNCH_TEMPLATE,
        {"metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 2}},
        "gpu-lt",
    )
    assert {d.policyName for d in found} == {"imdsv2-hop-limit-1"}
    assert all(d.enforcementLevel == pb.MANDATORY for d in found)
    assert any("httpTokens is 'optional'" in d.message for d in found)
    assert all(d.urn.endswith("::gpu-lt") for d in found)
    compliant = {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1}}
    assert _analyze(prod_pack, rules.LAUNCH_TEMPLATE, compliant) == []


def test_pack_reads_environment_from_stack_config_then_policy_config(prod_pack):
    public = {
        "vpcConfig": {"endpointPublicAccess": True, "endpointPrivateAccess": True},
        "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:us-east-1:1:key/k"}},
    }
    found = _analyze(prod_pack, rules.EKS_CLUSTER, public, "cluster")
    assert [d.policyName for d in found] == ["prod-eks-endpoint-private"]
    # --policy-pack-config wins over the stack config (what policy/config/dev.json does for dev).
    config = pb.PolicyConfig(enforcementLevel=pb.MANDATORY, properties=_struct({"environment": "dev"}))
    prod_pack.Configure(pb.ConfigureAnalyzerRequest(policyConfig={"prod-eks-endpoint-private": config}))
    try:
        assert _analyze(prod_pack, rules.EKS_CLUSTER, public, "cluster") == []
    finally:
        config = pb.PolicyConfig(enforcementLevel=pb.MANDATORY, properties=_struct({"environment": "prod"}))
        prod_pack.Configure(pb.ConfigureAnalyzerRequest(policyConfig={"prod-eks-endpoint-private": config}))


def test_pack_defers_unknown_values_instead_of_failing(prod_pack):
    container = {
        "name": "triton",
        "image": UNKNOWN_STRING,
        "startupProbe": {"httpGet": {"path": "/v2/health/ready", "port": 8000}},
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": 8000}},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": 8000}},
        "resources": {"limits": {"memory": "8Gi", "cpu": "4"}},
    }
    deployment = {
        "metadata": {"labels": {"app.kubernetes.io/name": "triton"}},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }
    assert _analyze(prod_pack, "kubernetes:apps/v1:Deployment", deployment) == []
    # Once the digest is known, a tag instead of a digest is a violation.
    container["image"] = "nvcr.io/nvidia/tritonserver:25.10-py3"
    found = _analyze(prod_pack, "kubernetes:apps/v1:Deployment", deployment)
    assert [d.policyName for d in found] == ["triton-probes-limits-digest"]
    container["image"] = f"nvcr.io/nvidia/tritonserver@{DIGEST}"
    assert _analyze(prod_pack, "kubernetes:apps/v1:Deployment", deployment) == []


def _stack_resource(resource_type: str, name: str, props: dict, bucket_urn: str | None = None):
    deps = {}
    if bucket_urn:
        deps = {"bucket": pb.AnalyzerPropertyDependencies(urns=[bucket_urn])}
    return pb.AnalyzerResource(
        type=resource_type,
        properties=_struct(props),
        urn=f"{STACK_URN}{resource_type}::{name}",
        name=name,
        propertyDependencies=deps,
    )


def test_pack_stack_policy_ties_bucket_settings_through_property_dependencies(prod_pack):
    bucket_urn = f"{STACK_URN}{rules.S3_BUCKETS[0]}::models"
    flags = {f: True for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")}
    resources = [
        _stack_resource(rules.S3_BUCKETS[0], "models", {"forceDestroy": False}),
        # During preview the bucket's id is unknown: only the property dependency ties these to it.
        _stack_resource(
            rules.S3_ENCRYPTION[0],
            "models-sse",
            {
                "bucket": UNKNOWN_STRING,
                "rules": [
                    {
                        "applyServerSideEncryptionByDefault": {
                            "sseAlgorithm": "aws:kms",
                            "kmsMasterKeyId": UNKNOWN_STRING,
                        }
                    }
                ],
            },
            bucket_urn,
        ),
        _stack_resource(
            rules.S3_VERSIONING[0],
            "models-versioning",
            {"bucket": UNKNOWN_STRING, "versioningConfiguration": {"status": "Enabled"}},
            bucket_urn,
        ),
        _stack_resource(rules.S3_PUBLIC_ACCESS_BLOCK, "models-pab", {"bucket": UNKNOWN_STRING, **flags}, bucket_urn),
    ]
    assert list(prod_pack.AnalyzeStack(pb.AnalyzeStackRequest(resources=resources)).diagnostics) == []
    without_block = resources[:3]
    found = list(prod_pack.AnalyzeStack(pb.AnalyzeStackRequest(resources=without_block)).diagnostics)
    assert [d.policyName for d in found] == ["s3-buckets-encrypted-versioned-private"]
    assert "public access block" in found[0].message and found[0].urn == bucket_urn
    assert found[0].enforcementLevel == pb.MANDATORY


def test_pack_manifest_and_per_stack_config_files():
    manifest = yaml.safe_load((PACK / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"] == {"name": "python", "options": {"virtualenv": ".venv"}}
    assert manifest["version"]
    requirements = (PACK / "requirements.txt").read_text()
    assert "pulumi-policy==" in requirements and "protobuf==5." in requirements
    for stack_file in sorted(ROOT.glob("Pulumi.*.yaml")):
        stack = stack_file.name.split(".")[1]
        stack_env = yaml.safe_load(stack_file.read_text())["config"]["triton-platform:environment"]
        config = json.loads((PACK / "config" / f"{stack}.json").read_text())
        assert set(config) <= set(rules.RULE_NAMES), f"policy/config/{stack}.json names unknown policies"
        assert config["prod-eks-endpoint-private"]["environment"] == stack_env
