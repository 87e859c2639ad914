"""The program, as it registers its resources under Pulumi mocks, passes every policy of the pack.

The rules of policy/rules.py run over each stack's recorded registrations (type tokens and camelCase
inputs exactly as the engine receives them), so a careless edit of a component that the policy pack
would block in `pulumi preview` fails here first. The environment comes from the stack config, as the
pack resolves it.
"""

from __future__ import annotations

import copy

import pytest

from platform_spec.settings import read_stack_config
from policy import rules


def _resources(run) -> list[rules.Resource]:
    return [rules.Resource(r.type, r.inputs, r.urn, r.name, id=r.id or None) for r in run.registrations]


def _context(run) -> rules.Context:
    config = read_stack_config(run.stack)
    return rules.Context(environment=rules.environment_of(None, config.get("triton-platform:environment"), run.stack))


def test_program_has_no_policy_violations(stack_run):
    violations = rules.evaluate(_resources(stack_run), _context(stack_run))
    assert violations == [], "\n".join(f"{v.rule} {v.urn.rsplit('::', 1)[-1]}: {v.message}" for v in violations)


# Resource types the rules must have seen in the program, so "no violations" is not "nothing checked".
SUBJECTS = {
    "imdsv2-hop-limit-1": [rules.LAUNCH_TEMPLATE, rules.EKS_NODE_GROUP],
    "gpu-node-groups-tainted": [rules.EKS_NODE_GROUP],
    "ecr-immutable-scan-on-push": [rules.ECR_REPOSITORY],
    "eks-secrets-kms-encrypted": [rules.EKS_CLUSTER],
    "prod-eks-endpoint-private": [rules.EKS_CLUSTER],
    "s3-buckets-encrypted-versioned-private": [
        rules.S3_BUCKETS[0],
        rules.S3_ENCRYPTION[0],
        rules.S3_VERSIONING[0],
        rules.S3_PUBLIC_ACCESS_BLOCK,
    ],
}


@pytest.mark.parametrize("rule", sorted(SUBJECTS))
def test_rules_had_subjects_in_the_program(stack_run, rule):
    types = {r.type for r in stack_run.registrations}
    missing = [t for t in SUBJECTS[rule] if t not in types]
    assert missing == [], f"{rule}: the program registers no {missing}"
    gpu_groups = [r for r in stack_run.of_type(rules.EKS_NODE_GROUP) if rules.is_gpu_node_group(r.inputs)]
    assert len(gpu_groups) == len(read_stack_config(stack_run.stack)["triton-platform:gpuPools"])


def _broken(run, type_: str, mutate) -> list[rules.Resource]:
    """The program's resources with the first resource of ``type_`` (GPU one for node groups) mutated."""
    resources = _resources(run)
    for index, resource in enumerate(resources):
        if resource.type == type_ and (type_ != rules.EKS_NODE_GROUP or rules.is_gpu_node_group(resource.props)):
            props = copy.deepcopy(dict(resource.props))
            mutate(props)
            resources[index] = rules.Resource(resource.type, props, resource.urn, resource.name, id=resource.id)
            return resources
    raise AssertionError(f"no {type_} in the program")


@pytest.mark.parametrize(
    ("type_", "mutate", "rule"),
    [
        (rules.LAUNCH_TEMPLATE, lambda p: p["metadataOptions"].update(httpPutResponseHopLimit=2), "imdsv2-hop-limit-1"),
        (rules.EKS_NODE_GROUP, lambda p: p.pop("taints"), "gpu-node-groups-tainted"),
        (rules.ECR_REPOSITORY, lambda p: p.update(imageTagMutability="MUTABLE"), "ecr-immutable-scan-on-push"),
        (rules.EKS_CLUSTER, lambda p: p.pop("encryptionConfig"), "eks-secrets-kms-encrypted"),
        (
            rules.S3_VERSIONING[0],
            lambda p: p["versioningConfiguration"].update(status="Suspended"),
            "s3-buckets-encrypted-versioned-private",
        ),
        (rules.S3_PUBLIC_ACCESS_BLOCK, lambda p: p.update(blockPublicPolicy=False), "s3-settings-secure"),
    ],
    ids=["hop-limit", "gpu-taint", "ecr-mutable", "no-kms-secrets", "versioning-suspended", "public-policy"],
)
def test_a_careless_edit_of_the_program_is_caught(dev_stack, type_, mutate, rule):
    violations = rules.evaluate(_broken(dev_stack, type_, mutate), _context(dev_stack))
    assert rule in {v.rule for v in violations}, violations


def test_prod_cluster_endpoint_rule_reads_the_program_cluster(prod_stack):
    def public(props):
        props["vpcConfig"]["endpointPublicAccess"] = True

    violations = rules.evaluate(_broken(prod_stack, rules.EKS_CLUSTER, public), _context(prod_stack))
    assert [v.rule for v in violations] == ["prod-eks-endpoint-private"]


@pytest.mark.parametrize("expose_grafana", [False, True])
def test_monitoring_chart_values_pass_the_grafana_policies(expose_grafana):
    """kube-prometheus-stack values as the monitoring component renders them (before it joins the program)."""
    from infra.monitoring import chart_values
    from platform_spec.settings import MonitoringSettings

    values = chart_values.kube_prometheus_stack_values(
        MonitoringSettings(expose_grafana=expose_grafana), "grafana-admin", "monitoring"
    )
    release = {"chart": "kube-prometheus-stack", "values": values}
    ctx = rules.Context(environment="prod")
    for rule in rules.RESOURCE_RULES:
        assert rule.check(rules.HELM_RELEASE, release, ctx) == [], rule.name
    assert rules.grafana_values(rules.HELM_RELEASE, release) is not None, "the Grafana rules found no Grafana values"


# --- the workload rules, now that the program declares Triton and Grafana ------------------------------------


def test_workload_rules_had_subjects_in_the_program(stack_run):
    """ "No violations" from the Triton, Grafana and secret-env rules means they read the program's own
    workloads: a Triton container per GPU pool, Grafana's values in the monitoring release, pod templates."""
    pools = read_stack_config(stack_run.stack)["triton-platform:gpuPools"]
    triton = [c for r in stack_run.registrations for c in rules.triton_containers(r.type, r.inputs)]
    assert len(triton) == len(pools)
    grafana = [r for r in stack_run.registrations if rules.grafana_values(r.type, r.inputs) is not None]
    assert [r.inputs["chart"] for r in grafana] == ["charts/kube-prometheus-stack-79.5.0.tgz"]
    pod_templates = [r for r in stack_run.registrations if rules.pod_spec(r.type, r.inputs) is not None]
    assert {r.type for r in pod_templates} >= {"kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job"}


def _edited(run, pick, mutate) -> list[rules.Resource]:
    """The program's resources with the first one ``pick`` accepts mutated."""
    resources = _resources(run)
    for index, resource in enumerate(resources):
        if pick(resource):
            props = copy.deepcopy(dict(resource.props))
            mutate(props)
            resources[index] = rules.Resource(resource.type, props, resource.urn, resource.name, id=resource.id)
            return resources
    raise AssertionError("no resource to edit in the program")


def _triton_container(props):
    return props["spec"]["template"]["spec"]["containers"][0]


def _is_triton_deployment(resource):
    return bool(rules.triton_containers(resource.type, resource.props))


def _is_grafana_release(resource):
    return rules.grafana_values(resource.type, resource.props) is not None


@pytest.mark.parametrize(("pick", "mutate", "rule"), [
    (_is_triton_deployment, lambda p: _triton_container(p).update(image=_triton_container(p)["image"].split("@")[0]
                                                                   + ":25.10"), "triton-probes-limits-digest"),
    (_is_triton_deployment, lambda p: _triton_container(p).pop("startupProbe"), "triton-probes-limits-digest"),
    (_is_triton_deployment, lambda p: _triton_container(p)["resources"].pop("limits"), "triton-probes-limits-digest"),
    (_is_triton_deployment, lambda p: _triton_container(p).setdefault("env", []).append(
        {"name": "HF_TOKEN", "value": "hf_plain"}), "no-plain-secret-env"),
    (_is_grafana_release, lambda p: p["values"]["grafana"].update(adminPassword="prom-operator"),
     "grafana-admin-from-secret"),
    (_is_grafana_release, lambda p: p["values"]["grafana"].setdefault("grafana.ini", {}).update(
        {"auth.anonymous": {"enabled": True}}), "grafana-anonymous-access-off"),
], ids=["triton-tag", "triton-no-startup-probe", "triton-no-limits", "plain-token-env", "grafana-password",
        "grafana-anonymous"])  # fmt: skip
def test_a_careless_edit_of_a_workload_is_caught(dev_stack, pick, mutate, rule):
    violations = rules.evaluate(_edited(dev_stack, pick, mutate), _context(dev_stack))
    assert rule in {v.rule for v in violations}, violations
