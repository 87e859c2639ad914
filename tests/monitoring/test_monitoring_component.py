"""The Monitoring component under Pulumi mocks (preview=False): chart values, monitors,
rules, dashboards, the Grafana admin Secret, outputs, and schema validity of what it
declares outside Helm."""

from __future__ import annotations

import json
from collections.abc import Callable

import kubernetes_validate
import pulumi
import pulumi_kubernetes as k8s
import pytest
from crd_shapes import prometheus_rule_errors, service_monitor_errors
from pulumi_recording import GENERATED_PASSWORD, Recorded, Registration, plain, run_program, secret_value

from infra.monitoring import LatencySlos, Monitoring, MonitoringArgs, MonitoringSettings, MonitoringSettingsError
from infra.monitoring.monitors import service_monitor_selects, to_prometheus_relabel_configs
from infra.monitoring.rule_files import render_rule_files, slo_values_in
from platform_spec import versions

KUBERNETES_VERSION = f"{versions.KUBERNETES_VERSION}.0"
MODEL_ROLES = {
    "llm_chat": "llm",
    "llm_support": "llm",
    "asr": "asr",
    "tts": "tts",
    "vad": "vad",
    "anc": "anc",
    "embed": "embed",
    "retriever": "retriever",
    "voice_pipeline": "pipeline",
}
PROD_SETTINGS = MonitoringSettings(
    retention="30d",
    retention_size="90GB",
    storage_gib=120,
    storage_class="gp3-encrypted",
    alertmanager_config_secret="alertmanager-receivers",
    expose_grafana=True,
)


def deploy(**overrides: object) -> Recorded:
    def program() -> dict[str, pulumi.Output[object]]:
        provider = k8s.Provider("cluster", kubeconfig="{}")
        args = MonitoringArgs(k8s_provider=provider, triton_namespace="triton", model_roles=MODEL_ROLES, **overrides)  # type: ignore[arg-type]
        monitoring = Monitoring("mon", args)
        return {
            "grafana_url": monitoring.grafana_url,
            "prometheus_url": monitoring.prometheus_url,
            "alertmanager_url": monitoring.alertmanager_url,
            "grafana_external_url": monitoring.grafana_external_url,
            "grafana_admin_secret": monitoring.grafana_admin_secret,
            "namespace": monitoring.namespace,
        }

    return run_program(program)


@pytest.fixture(scope="module")
def default_stack() -> Recorded:
    return deploy()


@pytest.fixture(scope="module")
def prod_stack() -> Recorded:
    return deploy(
        settings=PROD_SETTINGS,
        slos=LatencySlos(asr_p99_seconds=0.2, tts_p99_seconds=0.25, llm_p99_seconds=0.6, queue_seconds=0.03),
        runbook_base_url="https://git.example.com/platform/blob/main/infra/monitoring",
    )


def release(recorded: Recorded) -> Registration:
    return recorded.one("kubernetes:helm.sh/v3:Release")


def values(recorded: Recorded) -> dict:
    return release(recorded).inputs["values"]


def as_object(registration: Registration, api_version: str, kind: str) -> dict:
    return {"apiVersion": api_version, "kind": kind, **plain(registration.inputs)}


def test_component_type_children_and_provider(default_stack: Recorded) -> None:
    (component,) = default_stack.of_type("platform:monitoring:Monitoring")
    assert component.name == "mon"
    children = [r for r in default_stack.registrations if r.parent == component.urn]
    assert len(children) == len(default_stack.registrations) - 2  # all but the provider and the component
    assert all(child.name.startswith("mon-") for child in children)
    for child in children:
        if child.type.startswith("kubernetes:"):
            assert "::cluster::" in child.provider, f"{child.name} does not use the explicit provider"


def test_release_is_the_pinned_chart(default_stack: Recorded) -> None:
    inputs = release(default_stack).inputs
    pin = versions.KUBE_PROMETHEUS_STACK_CHART
    assert (inputs["chart"], inputs["version"]) == (pin["archive"], pin["version"])
    assert "repositoryOpts" not in inputs  # deployed from the vendored archive (infra/charts.py)
    assert inputs["name"] == "kube-prometheus-stack"
    assert inputs["namespace"] == "monitoring"


def test_prometheus_storage_and_retention_from_settings(default_stack: Recorded, prod_stack: Recorded) -> None:
    for recorded, settings in ((default_stack, MonitoringSettings()), (prod_stack, PROD_SETTINGS)):
        spec = values(recorded)["prometheus"]["prometheusSpec"]
        assert spec["retention"] == settings.retention
        assert spec["retentionSize"] == settings.retention_size
        claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
        assert claim["storageClassName"] == settings.storage_class
        assert claim["resources"]["requests"]["storage"] == f"{settings.storage_gib}Gi"
        assert claim["accessModes"] == ["ReadWriteOnce"]
    assert values(default_stack)["prometheus"]["prometheusSpec"]["retention"] == "15d"
    assert values(default_stack)["prometheus"]["prometheusSpec"]["retentionSize"] == "45GB"


def test_grafana_admin_comes_from_a_generated_secret(default_stack: Recorded) -> None:
    grafana = values(default_stack)["grafana"]
    assert "adminPassword" not in grafana and "adminUser" not in grafana
    secret = default_stack.one("kubernetes:core/v1:Secret")
    assert grafana["admin"]["existingSecret"] == secret.inputs["metadata"]["name"]
    assert secret.inputs["metadata"]["namespace"] == "monitoring"
    password = default_stack.one("random:index/randomPassword:RandomPassword")
    assert password.inputs["length"] >= 32
    # The whole stringData travels as a secret (it holds the generated password).
    data = secret_value(secret.inputs["stringData"])
    assert data[grafana["admin"]["passwordKey"]] == GENERATED_PASSWORD
    assert data[grafana["admin"]["userKey"]] == "admin"
    assert default_stack.outputs["grafana_admin_secret"] == secret.inputs["metadata"]["name"]
    # The Secret exists before the release that reads it.
    assert secret.urn in release(default_stack).dependencies


def test_grafana_anonymous_and_sign_up_off_sidecar_on(default_stack: Recorded) -> None:
    grafana = values(default_stack)["grafana"]
    assert grafana["grafana.ini"]["auth.anonymous"]["enabled"] is False
    assert grafana["grafana.ini"]["users"]["allow_sign_up"] is False
    sidecar = grafana["sidecar"]["dashboards"]
    assert sidecar["enabled"] is True
    assert (sidecar["label"], sidecar["labelValue"]) == ("grafana_dashboard", "1")
    assert sidecar["searchNamespace"] == ["monitoring"]
    assert grafana["service"]["type"] == "ClusterIP"


def test_alertmanager_config_from_the_named_secret(default_stack: Recorded, prod_stack: Recorded) -> None:
    prod = values(prod_stack)["alertmanager"]["alertmanagerSpec"]
    assert (prod["useExistingSecret"], prod["configSecret"]) == (True, "alertmanager-receivers")
    # Unset: the chart keeps its own (null-receiver) configuration (a prod stack cannot deploy so:
    # Settings.deploy_blockers); the spec then sets only sizes.
    default = values(default_stack)["alertmanager"]["alertmanagerSpec"]
    assert "useExistingSecret" not in default and "configSecret" not in default
    assert default["replicas"] == 1 and default["resources"]["limits"]["memory"]


def test_exposed_grafana_sits_behind_an_internal_load_balancer(prod_stack: Recorded) -> None:
    service = values(prod_stack)["grafana"]["service"]
    assert service["type"] == "LoadBalancer"
    assert service["annotations"]["service.beta.kubernetes.io/aws-load-balancer-internal"] == "true"
    read = prod_stack.one("kubernetes:core/v1:Service")
    assert read.read and read.name == "mon-grafana-service"


def test_outputs_are_in_cluster_urls(default_stack: Recorded, prod_stack: Recorded) -> None:
    assert default_stack.outputs["grafana_url"] == "http://grafana.monitoring.svc.cluster.local:80"
    assert default_stack.outputs["prometheus_url"] == "http://kps-prometheus.monitoring.svc.cluster.local:9090"
    assert default_stack.outputs["alertmanager_url"] == "http://kps-alertmanager.monitoring.svc.cluster.local:9093"
    assert default_stack.outputs["grafana_external_url"] is None
    assert default_stack.outputs["namespace"] == "monitoring"
    # Exposed, but the mock cluster has assigned no load-balancer address: still None, no error.
    assert prod_stack.outputs["grafana_external_url"] is None


def test_monitors_are_selected_by_prometheus_and_select_the_services(default_stack: Recorded) -> None:
    selector = values(default_stack)["prometheus"]["prometheusSpec"]["serviceMonitorSelector"]["matchLabels"]
    monitors = {m.inputs["metadata"]["name"]: m.inputs for m in default_stack.custom_resources("ServiceMonitor")}
    assert set(monitors) == {"triton", "dcgm-exporter"}
    for monitor in monitors.values():
        assert selector.items() <= monitor["metadata"]["labels"].items()
    triton = monitors["triton"]["spec"]
    # The Triton Services: labelled app.kubernetes.io/name=triton, metrics port named "metrics".
    triton_service = {"app.kubernetes.io/name": "triton", "app.kubernetes.io/component": "speech"}
    assert service_monitor_selects(triton, "triton", triton_service, ["http", "grpc", "metrics"])
    assert not service_monitor_selects(triton, "default", triton_service, ["metrics"])
    assert not service_monitor_selects(triton, "triton", {"app.kubernetes.io/name": "web"}, ["metrics"])
    assert not service_monitor_selects(triton, "triton", triton_service, ["http-metrics"])
    assert triton["jobLabel"] == "app.kubernetes.io/name"  # job="triton", as the alerts expect
    dcgm = monitors["dcgm-exporter"]["spec"]
    assert service_monitor_selects(dcgm, "gpu-system", {"app.kubernetes.io/name": "dcgm-exporter"}, ["metrics"])
    assert dcgm["endpoints"][0]["relabelings"][0]["targetLabel"] == "node"


def test_triton_monitor_labels_every_catalog_model_with_its_role(default_stack: Recorded) -> None:
    (monitor,) = [
        m for m in default_stack.custom_resources("ServiceMonitor") if m.inputs["metadata"]["name"] == "triton"
    ]
    relabelings = monitor.inputs["spec"]["endpoints"][0]["metricRelabelings"]
    by_role = {rule["replacement"]: rule["regex"] for rule in relabelings}
    assert by_role["llm"] == "llm_chat|llm_support"
    assert by_role["pipeline"] == "voice_pipeline"
    assert set(by_role) == set(MODEL_ROLES.values())
    assert all(rule["sourceLabels"] == ["model"] and rule["targetLabel"] == "role" for rule in relabelings)
    assert to_prometheus_relabel_configs(relabelings)[0]["source_labels"] == ["model"]


def test_prometheus_rules_are_the_rendered_rule_files(default_stack: Recorded, prod_stack: Recorded) -> None:
    selector = values(prod_stack)["prometheus"]["prometheusSpec"]["ruleSelector"]["matchLabels"]
    rendered = render_rule_files(
        LatencySlos(asr_p99_seconds=0.2, tts_p99_seconds=0.25, llm_p99_seconds=0.6, queue_seconds=0.03),
        "https://git.example.com/platform/blob/main/infra/monitoring",
    )
    rules = {r.inputs["metadata"]["name"]: r.inputs for r in prod_stack.custom_resources("PrometheusRule")}
    assert set(rules) == {f"platform-{stem}" for stem in rendered}
    for stem, content in rendered.items():
        rule = rules[f"platform-{stem}"]
        assert rule["spec"]["groups"] == content["groups"]
        assert selector.items() <= rule["metadata"]["labels"].items()
    assert slo_values_in(rules["platform-slo"]["spec"]) == {
        "asr_p99_seconds": 0.2,
        "tts_p99_seconds": 0.25,
        "llm_p99_seconds": 0.6,
        "queue_seconds": 0.03,
    }
    default_rules = {r.inputs["metadata"]["name"]: r.inputs for r in default_stack.custom_resources("PrometheusRule")}
    assert slo_values_in(default_rules["platform-slo"]["spec"]) == {
        "asr_p99_seconds": 0.15,
        "tts_p99_seconds": 0.15,
        "llm_p99_seconds": 0.4,
        "queue_seconds": 0.05,
    }


def test_dashboards_are_labelled_configmaps(default_stack: Recorded) -> None:
    configmaps = default_stack.of_type("kubernetes:core/v1:ConfigMap")
    uids = set()
    for configmap in configmaps:
        metadata = configmap.inputs["metadata"]
        assert metadata["labels"]["grafana_dashboard"] == "1"
        assert metadata["namespace"] == "monitoring"
        ((key, text),) = configmap.inputs["data"].items()
        model = json.loads(text)
        assert key == f"{model['uid']}.json"
        uids.add(model["uid"])
    assert uids == {"triton-overview", "triton-llm", "voice-pipeline", "gpu-nodes"}


@pytest.mark.parametrize(
    "type_, api_version, kind",
    [
        ("kubernetes:core/v1:Namespace", "v1", "Namespace"),
        ("kubernetes:core/v1:Secret", "v1", "Secret"),
        ("kubernetes:core/v1:ConfigMap", "v1", "ConfigMap"),
    ],
)
def test_objects_outside_helm_are_schema_valid(
    default_stack: Recorded, type_: str, api_version: str, kind: str
) -> None:
    registrations = [r for r in default_stack.of_type(type_) if not r.read]
    assert registrations
    for registration in registrations:
        kubernetes_validate.validate(as_object(registration, api_version, kind), KUBERNETES_VERSION, strict=True)


def test_namespace_admits_node_exporter(default_stack: Recorded) -> None:
    labels = default_stack.one("kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


def test_custom_resources_match_the_operator_crds(prod_stack: Recorded) -> None:
    """kubernetes-validate has no schemas for CRDs: ServiceMonitor and PrometheusRule are
    checked structurally against the fields the prometheus-operator CRDs require."""
    for registration in prod_stack.custom_resources("ServiceMonitor"):
        assert service_monitor_errors(registration.inputs) == [], registration.name
    for registration in prod_stack.custom_resources("PrometheusRule"):
        assert prometheus_rule_errors(registration.inputs) == [], registration.name


def test_the_structural_checks_can_fail(default_stack: Recorded) -> None:
    monitor = dict(default_stack.custom_resources("ServiceMonitor")[0].inputs)
    spec = dict(monitor["spec"])
    spec.pop("selector")
    spec["endpoints"] = [{**spec["endpoints"][0], "metricRelabelling": []}]
    assert any("selector" in error for error in service_monitor_errors({**monitor, "spec": spec}))
    assert any("metricRelabelling" in error for error in service_monitor_errors({**monitor, "spec": spec}))
    rule = dict(default_stack.custom_resources("PrometheusRule")[0].inputs)
    broken = {"groups": [{"name": "g", "rules": [{"record": "a", "alert": "b", "expr": "1", "for": "5 min"}]}]}
    errors = prometheus_rule_errors({**rule, "spec": broken})
    assert any("exactly one of record and alert" in e for e in errors) and any(".for" in e for e in errors)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: MonitoringSettings(retention="15 days"), "retention='15 days'"),
        (lambda: MonitoringSettings(retention_size="45G"), "retention_size='45G'"),
        (lambda: MonitoringSettings(storage_gib=0), "storage_gib=0"),
        (lambda: MonitoringSettings(retention_size="60GB", storage_gib=50), "retention_size='60GB'.*storage_gib"),
        (lambda: MonitoringSettings(storage_class="GP3!"), "storage_class='GP3!'"),
        (lambda: MonitoringSettings(alertmanager_config_secret="Bad_Name"), "alertmanager_config_secret='Bad_Name'"),
        (lambda: MonitoringSettings(expose_grafana="yes"), "expose_grafana='yes'"),  # type: ignore[arg-type]
    ],
)
def test_bad_settings_fail_with_the_key_and_value(make: Callable[[], object], message: str) -> None:
    # MonitoringSettings is the stack config's model (platform_spec.settings): pydantic's error, a ValueError.
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model_roles": {"asr": "speech"}}, r"model_roles\['asr'\]='speech'.*one of llm, asr"),
        ({"model_roles": {"asr/1": "asr"}}, "model name 'asr/1'"),
        ({"namespace": "Monitoring"}, "namespace='Monitoring'"),
        ({"triton_namespace": "triton_ns"}, "triton_namespace='triton_ns'"),
        ({"runbook_base_url": "ftp://x"}, "runbook_base_url='ftp://x'"),
    ],
)
def test_bad_arguments_fail_before_any_resource(overrides: dict, message: str) -> None:
    def program() -> dict[str, pulumi.Output[object]]:
        provider = k8s.Provider("cluster", kubeconfig="{}")
        Monitoring("mon", MonitoringArgs(k8s_provider=provider, **overrides))  # type: ignore[arg-type]
        return {}

    recorded = Recorded()
    with pytest.raises(MonitoringSettingsError, match=message):
        run_program(program, recorded)
    assert [r.type for r in recorded.registrations] == ["pulumi:providers:kubernetes"]
