"""EngineBuildAccess: least-privilege policy, schema-valid Kubernetes objects, all on the explicit provider."""

from __future__ import annotations

import json

import kubernetes_validate
import pulumi
import pulumi_kubernetes as k8s
import pytest

from engines.runners.kubernetes_job import JobSettings
from infra.engine_build_access import EngineBuildAccess, EngineBuildAccessArgs, build_policy
from tests.engines.test_engine_declaration import Recorder

BUCKET = "arn:aws:s3:::triton-platform-dev-models"
KEY = "arn:aws:kms:us-west-2:111122223333:key/abcd"


def test_policy_reads_inputs_writes_only_the_engine_store():
    policy = json.loads(build_policy(BUCKET, KEY, "us-west-2", store_prefix="/"))
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    published = [f"{BUCKET}/engines/*", f"{BUCKET}/timing-caches/*", f"{BUCKET}/.tmp/*"]
    assert by_sid["PublishEngines"]["Resource"] == published
    assert f"{BUCKET}/sources/*" in by_sid["ReadBuildInputsAndEngines"]["Resource"]
    assert by_sid["ModelStoreKeyThroughS3"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "s3.us-west-2.amazonaws.com"}
    }
    writable = {a for s in policy["Statement"] for a in s["Action"] if not a.startswith(("s3:Get", "s3:List", "kms:"))}
    assert writable == {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
    prefixed = json.loads(build_policy(BUCKET, KEY, "us-west-2", store_prefix="platform"))
    assert prefixed["Statement"][1]["Resource"][0] == f"{BUCKET}/platform/engines/*"


@pytest.fixture
def recorder():
    rec = Recorder()
    pulumi.runtime.set_mocks(rec, preview=False)
    return rec


def test_component_objects_are_schema_valid_and_use_the_given_provider(recorder):
    declared = []

    @pulumi.runtime.test
    def declare():
        provider = k8s.Provider("cluster", kubeconfig="{}")
        access = EngineBuildAccess(
            "engine-build",
            EngineBuildAccessArgs(
                cluster_name="triton-platform-dev",
                bucket_arn=BUCKET,
                kms_key_arn=KEY,
                region="us-west-2",
                k8s_provider=provider,
                tags={"environment": "dev"},
            ),
        )
        declared.append(access)
        return access.role_arn

    declare()  # returns once every registration has completed
    settings = declared[0].runner_settings()
    assert JobSettings.from_input({"kind": "kubernetes", "pool": "llm", **settings}).namespace == "engine-builds"

    by_type: dict[str, list] = {}
    for r in recorder.registered:
        by_type.setdefault(r.typ, []).append(r)
    kinds = {
        "kubernetes:core/v1:Namespace": ("v1", "Namespace"),
        "kubernetes:core/v1:ServiceAccount": ("v1", "ServiceAccount"),
        "kubernetes:networking.k8s.io/v1:NetworkPolicy": ("networking.k8s.io/v1", "NetworkPolicy"),
    }
    for typ, (api, kind) in kinds.items():
        (r,) = by_type[typ]
        assert r.provider and "::cluster::" in r.provider
        manifest = {"apiVersion": api, "kind": kind, **r.inputs}
        assert kubernetes_validate.validate(manifest, "1.34.0", strict=True) == "1.34"
    namespace = by_type["kubernetes:core/v1:Namespace"][0].inputs
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    policy = by_type["kubernetes:networking.k8s.io/v1:NetworkPolicy"][0].inputs["spec"]
    assert policy["ingress"] == [] and {p["port"] for e in policy["egress"] for p in e["ports"]} == {53, 443, 80}
    # Port 80 only to the EKS Pod Identity agent (where the AWS SDK gets the role's credentials), not anywhere.
    (agent,) = [e for e in policy["egress"] if any(p["port"] == 80 for p in e["ports"])]
    assert [peer["ipBlock"]["cidr"] for peer in agent["to"]] == ["169.254.170.23/32", "fd00:ec2::23/128"]
    (association,) = by_type["aws:eks/podIdentityAssociation:PodIdentityAssociation"]
    assert association.inputs["namespace"] == "engine-builds"
    assert association.inputs["serviceAccount"] == "engine-builder"
    (role_policy,) = by_type["aws:iam/rolePolicy:RolePolicy"]
    assert "PublishEngines" in role_policy.inputs["policy"]
