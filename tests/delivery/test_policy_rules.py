"""Each guardrail of policy/rules.py reports its violation and stays quiet on a compliant resource.

The arguments are synthetic but written with the exact input names the engine sees (camelCase, as
pulumi-aws 7.x and pulumi-kubernetes 4.x register them); test_policy_property_names checks those names
against the installed SDKs.
"""

from __future__ import annotations

import copy

import pytest

from platform_spec import gpus
from policy import rules

DEV = rules.Context(environment="dev")
PROD = rules.Context(environment="prod")
DIGEST = "sha256:" + "ab" * 32
TRITON_IMAGE = f"123456789012.dkr.ecr.us-west-2.amazonaws.com/triton-platform-dev-triton@{DIGEST}"


def _set(props: dict, path: str, value) -> dict:
    """Copy of props with a dotted path set (value None deletes it); list indexes as digits."""
    out = copy.deepcopy(props)
    keys = path.split(".")
    node = out
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    last = keys[-1]
    if value is None:
        if last.isdigit():
            del node[int(last)]
        else:
            node.pop(last, None)
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return out


LAUNCH_TEMPLATE = {
    "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1},
    "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 200, "encrypted": "true"}}],
}
GPU_NODE_GROUP = {
    "clusterName": "triton-dev",
    "amiType": "AL2023_x86_64_NVIDIA",
    "instanceTypes": ["g6e.2xlarge"],
    "capacityType": "SPOT",
    "launchTemplate": {"id": "lt-0123", "version": "1"},
    "labels": {"platform/pool": "llm"},
    "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
    "scalingConfig": {"minSize": 0, "maxSize": 2, "desiredSize": 1},
}
SYSTEM_NODE_GROUP = {
    "clusterName": "triton-dev",
    "amiType": "AL2023_x86_64_STANDARD",
    "instanceTypes": ["m7i.large"],
    "launchTemplate": {"id": "lt-0456", "version": "1"},
}
ECR = {"imageTagMutability": "IMMUTABLE", "imageScanningConfiguration": {"scanOnPush": True}}
CLUSTER = {
    "vpcConfig": {"endpointPrivateAccess": True, "endpointPublicAccess": False, "subnetIds": ["subnet-1"]},
    "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:us-east-1:1:key/abc"}},
}
PROBE = {"httpGet": {"path": "/v2/health/ready", "port": 8000}}
TRITON_DEPLOYMENT = {
    "metadata": {"name": "triton-llm", "labels": {"app.kubernetes.io/name": "triton"}},
    "spec": {
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "triton"}},
            "spec": {
                "containers": [
                    {
                        "name": "triton",
                        "image": TRITON_IMAGE,
                        "startupProbe": PROBE,
                        "readinessProbe": PROBE,
                        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": 8000}},
                        "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "60Gi"}},
                        "env": [
                            {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
                            {"name": "TOKENIZER_DIR", "value": "/models/tokenizer"},
                        ],
                    },
                    # A sidecar of a Triton pod is not a Triton container: no probes demanded of it.
                    {"name": "log-shipper", "image": "public.ecr.aws/fluent/fluent-bit:3.2"},
                ]
            },
        }
    },
}
KPS_RELEASE = {
    "chart": "kube-prometheus-stack",
    "version": "79.5.0",
    "repositoryOpts": {"repo": "https://prometheus-community.github.io/helm-charts"},
    "values": {
        "grafana": {
            "admin": {"existingSecret": "grafana-admin", "userKey": "admin-user", "passwordKey": "admin-password"},
            "grafana.ini": {"auth.anonymous": {"enabled": False}},
        }
    },
}

DEPLOYMENT = "kubernetes:apps/v1:Deployment"

# (rule, resource type, compliant props, [(mutated path, value, expected message fragment)], context)
CASES = [
    (
        "imdsv2-hop-limit-1",
        rules.LAUNCH_TEMPLATE,
        LAUNCH_TEMPLATE,
        [
            ("metadataOptions.httpTokens", "optional", "httpTokens is 'optional'"),
            ("metadataOptions.httpPutResponseHopLimit", 2, "httpPutResponseHopLimit is 2"),
            ("metadataOptions.httpPutResponseHopLimit", None, "httpPutResponseHopLimit is None"),
            ("metadataOptions.httpEndpoint", "disabled", "httpEndpoint is 'disabled'"),
            ("metadataOptions", None, "metadataOptions is not set"),
        ],
        DEV,
    ),
    (
        "imdsv2-hop-limit-1",
        rules.EKS_NODE_GROUP,
        GPU_NODE_GROUP,
        [
            ("launchTemplate", None, "launchTemplate is not set"),
        ],
        DEV,
    ),
    (
        "gpu-node-groups-tainted",
        rules.EKS_NODE_GROUP,
        GPU_NODE_GROUP,
        [
            ("taints", None, "has taints none"),
            ("taints.0.effect", "PREFER_NO_SCHEDULE", "nvidia.com/gpu:PREFER_NO_SCHEDULE"),
            ("taints.0.key", "gpu", "add taints"),
        ],
        DEV,
    ),
    (
        "ecr-immutable-scan-on-push",
        rules.ECR_REPOSITORY,
        ECR,
        [
            ("imageTagMutability", "MUTABLE", "imageTagMutability is 'MUTABLE'"),
            ("imageTagMutability", None, "imageTagMutability is None"),
            ("imageScanningConfiguration.scanOnPush", False, "scanOnPush is False"),
            ("imageScanningConfiguration", None, "scanOnPush is None"),
        ],
        DEV,
    ),
    (
        "prod-eks-endpoint-private",
        rules.EKS_CLUSTER,
        CLUSTER,
        [
            ("vpcConfig.endpointPublicAccess", True, "endpointPublicAccess is True"),
            ("vpcConfig.endpointPublicAccess", None, "not set (AWS default: true)"),
            ("vpcConfig.endpointPrivateAccess", False, "endpointPrivateAccess is False"),
        ],
        PROD,
    ),
    (
        "eks-secrets-kms-encrypted",
        rules.EKS_CLUSTER,
        CLUSTER,
        [
            ("encryptionConfig", None, "encryptionConfig is not set"),
            ("encryptionConfig.resources", [], "include 'secrets'"),
            ("encryptionConfig.provider.keyArn", "", "keyArn is empty"),
        ],
        DEV,
    ),
    (
        "triton-probes-limits-digest",
        DEPLOYMENT,
        TRITON_DEPLOYMENT,
        [
            ("spec.template.spec.containers.0.startupProbe", None, "no startupProbe"),
            ("spec.template.spec.containers.0.readinessProbe", None, "no readinessProbe"),
            ("spec.template.spec.containers.0.livenessProbe", None, "no livenessProbe"),
            ("spec.template.spec.containers.0.resources", None, "lacks memory and cpu or nvidia.com/gpu"),
            ("spec.template.spec.containers.0.resources.limits.memory", None, "lacks memory"),
            ("spec.template.spec.containers.0.image", "nvcr.io/nvidia/tritonserver:25.10-py3", "not pinned by digest"),
        ],
        DEV,
    ),
    (
        "grafana-admin-from-secret",
        rules.HELM_RELEASE,
        KPS_RELEASE,
        [
            ("values.grafana.admin", None, "admin.existingSecret is not set"),
            ("values.grafana.adminPassword", "prom-operator", "adminPassword is set"),
        ],
        DEV,
    ),
    (
        "no-plain-secret-env",
        DEPLOYMENT,
        TRITON_DEPLOYMENT,
        [
            ("spec.template.spec.containers.0.env.0", {"name": "HF_TOKEN", "value": "hf_abc"}, "env HF_TOKEN"),
            ("spec.template.spec.containers.1.env", [{"name": "db-password", "value": "x"}], "env db-password"),
            (
                "spec.template.spec.containers.0.env.1",
                {"name": "AWS_SECRET_ACCESS_KEY", "value": "x"},
                "AWS_SECRET_ACCESS_KEY",
            ),
        ],
        DEV,
    ),
]
# Dotted paths cannot address the Helm key "grafana.ini": the Grafana anonymous cases are written out below.

RULES_BY_NAME = {r.name: r for r in rules.RESOURCE_RULES}


def _violations(rule_name: str, resource_type: str, props: dict, ctx: rules.Context) -> list[str]:
    return RULES_BY_NAME[rule_name].check(resource_type, props, ctx)


@pytest.mark.parametrize(("rule_name", "resource_type", "props", "ctx"), [(c[0], c[1], c[2], c[4]) for c in CASES])
def test_compliant_resource_passes(rule_name, resource_type, props, ctx):
    assert _violations(rule_name, resource_type, props, ctx) == []


@pytest.mark.parametrize(
    ("rule_name", "resource_type", "props", "path", "value", "fragment", "ctx"),
    [(c[0], c[1], c[2], p, v, f, c[4]) for c in CASES for (p, v, f) in c[3]],
    ids=[f"{c[0]}:{p}={v!r}"[:90] for c in CASES for (p, v, _) in c[3]],
)
def test_violation_is_reported(rule_name, resource_type, props, path, value, fragment, ctx):
    found = _violations(rule_name, resource_type, _set(props, path, value), ctx)
    assert found, f"{rule_name} said nothing about {path}={value!r}"
    assert any(fragment in message for message in found), found


def test_every_resource_rule_has_cases():
    covered = {c[0] for c in CASES} | {"grafana-anonymous-access-off", "s3-settings-secure"}
    assert covered == set(RULES_BY_NAME)


# --- rules whose cases do not fit the table -------------------------------------------------------


def test_prod_endpoint_rule_is_quiet_in_dev():
    public = _set(CLUSTER, "vpcConfig.endpointPublicAccess", True)
    assert _violations("prod-eks-endpoint-private", rules.EKS_CLUSTER, public, DEV) == []


def test_cpu_node_group_needs_no_gpu_taint():
    assert _violations("gpu-node-groups-tainted", rules.EKS_NODE_GROUP, SYSTEM_NODE_GROUP, DEV) == []


@pytest.mark.parametrize(
    "marker",
    [
        {"amiType": "AL2023_x86_64_NVIDIA", "instanceTypes": None},
        {"amiType": "BOTTLEROCKET_x86_64_NVIDIA", "instanceTypes": None},
        {"amiType": "CUSTOM", "instanceTypes": ["p5.48xlarge"]},
        {"amiType": None, "instanceTypes": ["m7i.large", "g6.xlarge"]},
    ],
)
def test_gpu_node_group_is_recognised_by_ami_or_instance_type(marker):
    props = {k: v for k, v in {**GPU_NODE_GROUP, **marker}.items() if v is not None}
    props.pop("taints")
    assert rules.is_gpu_node_group(props)
    assert _violations("gpu-node-groups-tainted", rules.EKS_NODE_GROUP, props, DEV)


def test_gpu_families_cover_the_platform_gpu_table():
    # The pack cannot import infra (it runs in its own venv); its copy must not fall behind.
    assert set(gpus.INSTANCE_FAMILY_SKU) <= rules.GPU_INSTANCE_FAMILIES


def _kps(grafana: dict) -> dict:
    return {**KPS_RELEASE, "values": {"grafana": grafana}}


@pytest.mark.parametrize(
    ("grafana", "fragment"),
    [
        ({"grafana.ini": {"auth.anonymous": {"enabled": True}}}, "auth.anonymous.enabled is true"),
        ({"grafana.ini": {"auth.anonymous": {"enabled": "true"}}}, "auth.anonymous.enabled is true"),
        ({"env": {"GF_AUTH_ANONYMOUS_ENABLED": "true"}}, "GF_AUTH_ANONYMOUS_ENABLED"),
    ],
)
def test_grafana_anonymous_access_is_reported(grafana, fragment):
    found = _violations("grafana-anonymous-access-off", rules.HELM_RELEASE, _kps(grafana), DEV)
    assert any(fragment in m for m in found), found


def test_grafana_anonymous_rule_quiet_on_compliant_and_disabled_grafana():
    assert _violations("grafana-anonymous-access-off", rules.HELM_RELEASE, KPS_RELEASE, DEV) == []
    # Grafana switched off in the chart: nothing to check.
    off = _kps({"enabled": False, "grafana.ini": {"auth.anonymous": {"enabled": True}}})
    assert _violations("grafana-anonymous-access-off", rules.HELM_RELEASE, off, DEV) == []
    assert _violations("grafana-admin-from-secret", rules.HELM_RELEASE, off, DEV) == []


def test_grafana_rules_apply_to_standalone_chart_and_oci_reference():
    standalone = {"chart": "oci://registry.example/charts/grafana", "values": {"adminPassword": "admin"}}
    found = _violations("grafana-admin-from-secret", rules.HELM_RELEASE, standalone, DEV)
    assert any("adminPassword" in m for m in found)
    v4 = {"chart": "kube-prometheus-stack", "values": {"grafana": {"grafana.ini": {"auth.anonymous": {"enabled": 1}}}}}
    assert _violations("grafana-anonymous-access-off", "kubernetes:helm.sh/v4:Chart", v4, DEV)


def test_grafana_anonymous_env_on_a_plain_deployment_is_reported():
    grafana = _set(
        TRITON_DEPLOYMENT,
        "spec.template.spec.containers.1.env",
        [{"name": "GF_AUTH_ANONYMOUS_ENABLED", "value": "true"}],
    )
    assert _violations("grafana-anonymous-access-off", DEPLOYMENT, grafana, DEV)


def test_triton_rule_identifies_triton_by_image_without_label():
    unlabelled = _set(TRITON_DEPLOYMENT, "spec.template.metadata.labels", {"app": "llm"})
    unlabelled = _set(unlabelled, "metadata.labels", {})
    unlabelled = _set(unlabelled, "spec.template.spec.containers.0.image", "nvcr.io/nvidia/tritonserver:25.10-py3")
    assert any(
        "not pinned by digest" in m for m in _violations("triton-probes-limits-digest", DEPLOYMENT, unlabelled, DEV)
    )


def test_triton_rule_skips_non_triton_workloads_and_jobs():
    other = _set(TRITON_DEPLOYMENT, "metadata.labels", {"app.kubernetes.io/name": "voice-gateway"})
    other = _set(other, "spec.template.metadata.labels", {"app.kubernetes.io/name": "voice-gateway"})
    other = _set(other, "spec.template.spec.containers.0", {"name": "gateway", "image": "gateway:1"})
    assert _violations("triton-probes-limits-digest", DEPLOYMENT, other, DEV) == []
    # An engine build Job in the TensorRT image is not a Triton server.
    job = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "build", "image": "nvcr.io/nvidia/tensorrt:25.10-py3"}]}}
        }
    }
    assert _violations("triton-probes-limits-digest", "kubernetes:batch/v1:Job", job, DEV) == []


def test_triton_rule_covers_statefulsets_and_pods():
    spec = TRITON_DEPLOYMENT["spec"]["template"]["spec"]
    bare = {"spec": {"containers": [{**spec["containers"][0], "startupProbe": None}]}}
    bare["spec"]["containers"][0].pop("startupProbe")
    assert _violations("triton-probes-limits-digest", "kubernetes:core/v1:Pod", bare, DEV)
    sts = _set(TRITON_DEPLOYMENT, "spec.template.spec.containers.0.livenessProbe", None)
    assert _violations("triton-probes-limits-digest", "kubernetes:apps/v1:StatefulSet", sts, DEV)


def test_secret_env_rule_reads_init_containers_and_cron_jobs():
    cron = {
        "spec": {
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "initContainers": [
                                {"name": "fetch", "image": "x", "env": [{"name": "API_KEY", "value": "k"}]}
                            ],
                            "containers": [{"name": "main", "image": "y"}],
                        }
                    }
                }
            }
        }
    }
    found = _violations("no-plain-secret-env", "kubernetes:batch/v1:CronJob", cron, DEV)
    assert found and "initContainers 'fetch'" in found[0]


@pytest.mark.parametrize("name", ["TOKENIZER_DIR", "KEYCLOAK_URL", "MODEL_REPOSITORY", "SECRETARY"])
def test_secret_env_rule_matches_whole_name_segments(name):
    props = _set(TRITON_DEPLOYMENT, "spec.template.spec.containers.0.env", [{"name": name, "value": "v"}])
    assert _violations("no-plain-secret-env", DEPLOYMENT, props, DEV) == []


def test_secret_env_allowlist_from_policy_config():
    props = _set(TRITON_DEPLOYMENT, "spec.template.spec.containers.0.env", [{"name": "ENGINE_KEY", "value": "abc"}])
    assert _violations("no-plain-secret-env", DEPLOYMENT, props, DEV)
    allowed = rules.Context(environment="dev", allowed_env_names=frozenset({"ENGINE_KEY"}))
    assert _violations("no-plain-secret-env", DEPLOYMENT, props, allowed) == []


def test_unknown_values_are_not_reported_during_preview():
    unknown_image = _set(TRITON_DEPLOYMENT, "spec.template.spec.containers.0.image", rules.UNKNOWN)
    assert _violations("triton-probes-limits-digest", DEPLOYMENT, unknown_image, DEV) == []
    unknown_hops = _set(LAUNCH_TEMPLATE, "metadataOptions.httpPutResponseHopLimit", rules.UNKNOWN)
    assert _violations("imdsv2-hop-limit-1", rules.LAUNCH_TEMPLATE, unknown_hops, DEV) == []
    # Unknown is not a free pass for what IS known in the same resource.
    both = _set(unknown_hops, "metadataOptions.httpTokens", "optional")
    assert _violations("imdsv2-hop-limit-1", rules.LAUNCH_TEMPLATE, both, DEV)


def test_engine_unknown_sentinels_become_unknown():
    raw = {"a": "04da6b54-80e4-46f7-96ec-b56ff0331ba9", "b": [{"c": "x"}], "d": 1}
    assert rules.from_engine_value(raw, ["04da6b54-80e4-46f7-96ec-b56ff0331ba9"]) == {
        "a": rules.UNKNOWN,
        "b": [{"c": "x"}],
        "d": 1,
    }


@pytest.mark.parametrize(
    ("policy_config", "stack_env", "stack", "expected"),
    [
        ({"environment": "prod"}, "dev", "dev", "prod"),
        (None, "prod", "staging", "prod"),
        (None, None, "acme/triton-platform/prod", "prod"),
        (None, None, "dev", "dev"),
        ({"environment": "bogus"}, None, None, "dev"),
    ],
)
def test_environment_resolution(policy_config, stack_env, stack, expected):
    assert rules.environment_of(policy_config, stack_env, stack) == expected


# --- S3: resource-level settings and the stack-level bucket check --------------------------------------

SSE = rules.S3_ENCRYPTION[0]
VERSIONING = rules.S3_VERSIONING[0]
PAB = rules.S3_PUBLIC_ACCESS_BLOCK
BUCKET = rules.S3_BUCKETS[0]


def _bucket_stack(*, sse="aws:kms", versioning="Enabled", pab=True, link="deps") -> list[rules.Resource]:
    urn = "urn:pulumi:dev::triton-platform::aws:s3/bucket:Bucket::models"
    bucket = rules.Resource(
        BUCKET, {"bucket": "triton-models-dev", "forceDestroy": False}, urn, "models", id="triton-models-dev"
    )

    def companion(kind: str, name: str, props: dict) -> rules.Resource:
        if link == "deps":
            return rules.Resource(
                kind, {**props, "bucket": rules.UNKNOWN}, f"urn:{name}", name, property_dependencies={"bucket": [urn]}
            )
        return rules.Resource(kind, {**props, "bucket": "triton-models-dev"}, f"urn:{name}", name)

    stack = [bucket]
    if sse:
        stack.append(
            companion(
                SSE,
                "models-sse",
                {
                    "rules": [
                        {
                            "applyServerSideEncryptionByDefault": {
                                "sseAlgorithm": sse,
                                "kmsMasterKeyId": "arn:aws:kms:...",
                            },
                            "bucketKeyEnabled": True,
                        }
                    ]
                },
            )
        )
    if versioning:
        stack.append(companion(VERSIONING, "models-versioning", {"versioningConfiguration": {"status": versioning}}))
    if pab is not None:
        flags = {f: True for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")}
        if pab is False:
            flags["restrictPublicBuckets"] = False
        stack.append(companion(PAB, "models-pab", flags))
    return stack


@pytest.mark.parametrize("link", ["deps", "value"])
def test_compliant_bucket_passes_stack_rule(link):
    stack = _bucket_stack(link=link)
    assert rules.check_s3_buckets(stack, DEV) == []
    assert [v for v in rules.evaluate(stack, DEV)] == []


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"sse": None}, "no SSE-KMS default encryption"),
        ({"sse": "AES256"}, "no SSE-KMS default encryption"),
        ({"versioning": None}, "is not versioned"),
        ({"versioning": "Suspended"}, "is not versioned"),
        ({"pab": None}, "no full public access block"),
        ({"pab": False}, "no full public access block"),
    ],
)
def test_bucket_missing_a_protection_is_reported(kwargs, fragment):
    found = rules.check_s3_buckets(_bucket_stack(**kwargs), DEV)
    assert len(found) == 1 and fragment in found[0][1], found
    assert found[0][0].endswith("::models")


def test_companion_of_another_bucket_does_not_count():
    stack = _bucket_stack()
    other = rules.Resource(BUCKET, {"bucket": "logs"}, "urn:logs", "logs", id="logs")
    found = rules.check_s3_buckets([*stack, other], DEV)
    assert {m.split()[1] for _, m in found} == {"logs"} and len(found) == 3


@pytest.mark.parametrize(
    ("kind", "props", "fragment"),
    [
        (SSE, {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]}, "use 'aws:kms'"),
        (SSE, {"rules": []}, "no server-side encryption rule"),
        (VERSIONING, {"versioningConfiguration": {"status": "Suspended"}}, "'Suspended'"),
        (
            PAB,
            {
                "blockPublicAcls": True,
                "blockPublicPolicy": False,
                "ignorePublicAcls": True,
                "restrictPublicBuckets": True,
            },
            "blockPublicPolicy not true",
        ),
        (BUCKET, {"acl": "public-read"}, "acl is 'public-read'"),
        (BUCKET, {"versioning": {"enabled": False}}, "versioning.enabled is false"),
    ],
)
def test_s3_setting_resources_report_weak_settings(kind, props, fragment):
    found = rules.check_s3_settings(kind, props, DEV)
    assert any(fragment in m for m in found), found


def test_s3_setting_resources_quiet_when_compliant():
    for resource in _bucket_stack():
        assert rules.check_s3_settings(resource.type, resource.props, DEV) == []
