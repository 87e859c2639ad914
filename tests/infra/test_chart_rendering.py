"""Every chart the program installs, rendered by the real Helm engine with exactly the values the program passes
(taken from the mocked program run, not retyped): it renders, reads every values key it is given, and every
object passes the Kubernetes 1.34 schema strictly (custom resources: the CRDs shipped in the charts). And what
the rendering shows about meaning on EKS: no alert that can never resolve, Grafana scraped, no DaemonSet that
no node can run."""

from __future__ import annotations

import copy
import json

import jsonschema
import kubernetes_validate
import pytest

from infra.charts import ChartArchiveError, release_chart
from platform_spec import versions
from tests.helm_render import PINS, crd_schemas, ignored_keys, render_releases, validate_custom_resource
from tests.pulumi_harness import run_stack

KUBERNETES = "1.34.0"


@pytest.fixture(scope="module", params=["dev", "prod"])
def stack(request):
    run = run_stack(request.param)
    run.raise_error()
    both = render_releases(run)
    return run, {n: r for n, (r, _) in both.items()}, {n: objects for n, (_, objects) in both.items()}


def test_the_charts_ship_the_crds_of_every_custom_kind_the_platform_uses():
    schemas = crd_schemas()
    assert ("keda.sh", "v1alpha1", "ScaledObject") in schemas
    assert ("monitoring.coreos.com", "v1", "ServiceMonitor") in schemas


def _validate(obj):
    try:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        validate_custom_resource(obj)


def test_every_release_is_a_vendored_pinned_chart(stack):
    run, releases, _ = stack
    assert set(releases) == {"nvidia-device-plugin", "dcgm-exporter", "kube-prometheus-stack",
                             "keda", "cluster-autoscaler"}  # fmt: skip
    for release in releases.values():
        assert release.inputs["chart"] in PINS and "repositoryOpts" not in release.inputs


def test_every_chart_reads_every_values_key_the_program_passes(stack):
    _, releases, _ = stack
    for name, release in releases.items():
        assert ignored_keys(release.inputs.get("values") or {}, PINS[release.inputs["chart"]]) == [], name


def test_the_ignored_key_check_catches_a_renamed_key(stack):
    _, releases, _ = stack
    values = copy.deepcopy(releases["kube-prometheus-stack"].inputs["values"])
    values["alertmanager"]["alertmanagerSpecc"] = values["alertmanager"].pop("alertmanagerSpec")
    values["prometheus-node-exporter"] = {"tolerationz": []}
    assert ignored_keys(values, versions.KUBE_PROMETHEUS_STACK_CHART) == [
        "alertmanager.alertmanagerSpecc", "prometheus-node-exporter.tolerationz"]  # fmt: skip


def test_every_rendered_object_passes_its_schema(stack):
    _, _, rendered = stack
    for name, objects in rendered.items():
        assert objects, name
        for obj in objects:
            _validate(obj)


def test_the_programs_own_custom_resources_pass_their_crds(stack):
    run, _, _ = stack
    custom = [r for r in run.registrations if r.type.startswith(("kubernetes:monitoring.coreos.com/",
                                                                 "kubernetes:keda.sh/"))]  # fmt: skip
    assert {r.type.rsplit(":", 1)[-1] for r in custom} >= {"ServiceMonitor", "PrometheusRule", "ScaledObject"}
    for registration in custom:
        _, group_version, kind = registration.type.split(":")
        obj = {**json.loads(json.dumps(registration.inputs)), "apiVersion": group_version, "kind": kind}
        _validate(obj)


def test_a_misspelt_key_in_a_custom_resource_is_refused(stack):
    """The API server refuses unknown fields of a custom resource under strict field validation; so does the check."""
    run, _, _ = stack
    (scaled,) = [r for r in run.registrations if r.type.endswith(":ScaledObject") and "speech" in r.name]
    obj = {**json.loads(json.dumps(scaled.inputs)), "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject"}
    _validate(obj)
    obj["spec"]["minReplicas"] = obj["spec"].pop("minReplicaCount")
    with pytest.raises(jsonschema.ValidationError, match="minReplicas"):
        _validate(obj)


def test_a_chart_archive_that_is_not_the_pinned_one_is_refused():
    pin = {**versions.DCGM_EXPORTER_CHART, "sha256": "0" * 64}
    with pytest.raises(ChartArchiveError, match=r"charts/dcgm-exporter-4.6.0.tgz has sha256 [0-9a-f]{64}, not the "
                                                r"pinned 0{64}.*restore it from version control"):  # fmt: skip
        release_chart(pin)
    with pytest.raises(ChartArchiveError, match="is missing; restore it"):
        release_chart({**pin, "archive": "charts/no-such-chart-1.0.0.tgz"})


# --- what the rendering says about meaning on EKS ---------------------------------------------------


def _kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def test_no_alert_watches_a_control_plane_component_eks_does_not_expose(stack):
    """EKS runs kube-controller-manager, kube-scheduler and etcd out of reach: a ServiceMonitor for them scrapes
    nothing, and the chart's `absent(up{...})` alerts for them would fire forever."""
    _, _, rendered = stack
    objects = rendered["kube-prometheus-stack"]
    monitored = {o["metadata"]["name"] for o in _kind(objects, "ServiceMonitor")}
    assert not [m for m in monitored if any(c in m for c in ("controller-manager", "scheduler", "etcd"))], monitored
    alerts = {r.get("alert") for o in _kind(objects, "PrometheusRule") for g in o["spec"]["groups"] for r in g["rules"]}
    assert not alerts & {"KubeControllerManagerDown", "KubeSchedulerDown", "etcdMembersDown", "etcdInsufficientMembers"}


def test_every_service_monitor_and_rule_is_selected_by_the_prometheus(stack):
    run, _, rendered = stack
    objects = rendered["kube-prometheus-stack"]
    (prometheus,) = _kind(objects, "Prometheus")
    spec = prometheus["spec"]
    monitors = _kind(objects, "ServiceMonitor") + [
        {"metadata": r.inputs["metadata"]} for r in run.of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    ]
    rules = _kind(objects, "PrometheusRule") + [
        {"metadata": r.inputs["metadata"]} for r in run.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    ]
    for selector, selected in ((spec["serviceMonitorSelector"], monitors), (spec["ruleSelector"], rules)):
        wanted = selector.get("matchLabels", {})
        for obj in selected:
            labels = obj["metadata"].get("labels") or {}
            assert all(labels.get(k) == v for k, v in wanted.items()), (obj["metadata"]["name"], labels, wanted)
    assert any("grafana" in m["metadata"]["name"] for m in monitors)


def test_every_monitoring_container_has_requests_and_limits(stack):
    _, _, rendered = stack
    kinds = ("Deployment", "DaemonSet", "StatefulSet")
    workloads = [o for o in rendered["kube-prometheus-stack"] if o["kind"] in kinds]
    assert workloads
    for workload in workloads:
        for container in workload["spec"]["template"]["spec"]["containers"]:
            resources = container.get("resources") or {}
            where = f"{workload['kind']} {workload['metadata']['name']} container {container['name']}"
            assert resources.get("requests", {}).get("memory") and resources.get("limits", {}).get("memory"), where
            assert resources.get("requests", {}).get("cpu"), where


def test_prometheus_and_alertmanager_are_not_single_replicas_in_prod(stack):
    run, _, rendered = stack
    objects = rendered["kube-prometheus-stack"]
    (prometheus,), (alertmanager,) = _kind(objects, "Prometheus"), _kind(objects, "Alertmanager")
    expected = 2 if run.stack == "prod" else 1
    assert prometheus["spec"]["replicas"] == expected and alertmanager["spec"]["replicas"] == expected


def test_the_device_plugins_mps_daemon_stays_inert(stack):
    """nvidia-device-plugin 0.18.0 always renders its MPS control daemon (no value turns it off), pinned to
    nodes labelled nvidia.com/mps.capable=true. No pool carries that label, so it never runs; the plugin
    itself runs on every GPU node."""
    run, _, rendered = stack
    daemonsets = {o["metadata"]["name"]: o for o in _kind(rendered["nvidia-device-plugin"], "DaemonSet")}
    mps = daemonsets.pop("nvidia-device-plugin-mps-control-daemon")
    assert mps["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/mps.capable": "true"}
    for group in run.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert "nvidia.com/mps.capable" not in (group.inputs.get("labels") or {})
    (plugin,) = daemonsets.values()
    assert "nodeSelector" not in plugin["spec"]["template"]["spec"]


def test_keda_pods_meet_the_restricted_pod_security_of_their_namespace(stack):
    run, _, rendered = stack
    (namespace,) = [r for r in run.of_type("kubernetes:core/v1:Namespace") if r.inputs["metadata"]["name"] == "keda"]
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = [o["spec"]["template"]["spec"] for o in _kind(rendered["keda"], "Deployment")]
    assert len(pods) == 3
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
        assert not any("hostPath" in v for v in pod.get("volumes") or [])
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]
            assert context["seccompProfile"]["type"] == "RuntimeDefault"
