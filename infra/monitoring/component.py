"""The monitoring stack of one environment, as a Pulumi component.

``Monitoring`` provisions, through the explicit Kubernetes provider it is given:

* the monitoring namespace;
* kube-prometheus-stack from its official Helm chart (pin: ``platform_spec.versions``), with
  Prometheus on a persistent volume and retention / retention size from
  ``MonitoringSettings``; Alertmanager reading its receivers from the existing Secret
  ``settings.alertmanager_config_secret``; Grafana with its admin credentials from a
  Secret this component creates from a generated password (never a chart default),
  anonymous access and sign-up off, and the dashboard sidecar on;
* ServiceMonitors for Triton (Services labelled ``app.kubernetes.io/name: triton``,
  port ``metrics``, in ``triton_namespace``) and the DCGM exporter (``dcgm_namespace``);
  the Triton monitor labels each model's series with its role from ``model_roles``;
* PrometheusRules built from the YAML rule files in ``rules/``, thresholds from ``slos``;
* the dashboards of ``dashboards.py`` as ConfigMaps labelled for the Grafana sidecar.

Outputs: in-cluster URLs of Grafana, Prometheus and Alertmanager, Grafana's external URL
when ``settings.expose_grafana`` (an internal AWS load balancer), and the name of the
Grafana admin Secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.charts import release_chart
from infra.monitoring import chart_values
from infra.monitoring.dashboards import build_dashboards, dashboard_json
from infra.monitoring.monitors import (
    check_namespace,
    dcgm_service_monitor_spec,
    triton_service_monitor_spec,
)
from infra.monitoring.rule_files import render_rule_files
from infra.monitoring.slos import LatencySlos
from platform_spec import versions
from platform_spec.settings import MonitoringSettings

MONITORING_API_VERSION = "monitoring.coreos.com/v1"
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_ADMIN_USER = "admin"
# Helm waits for every chart resource (PVC bound, pods ready) up to this many seconds.
RELEASE_TIMEOUT_S = 900
PART_OF = {"app.kubernetes.io/part-of": "triton-platform"}


@dataclass(frozen=True)
class MonitoringArgs:
    """Inputs of ``Monitoring``.

    ``model_roles`` maps each served Triton model name to its catalog role (llm, asr,
    tts, vad, anc, embed, retriever, pipeline). ``runbook_base_url`` is where
    ``infra/monitoring/`` is browsable, to make the alerts' runbook links absolute.
    ``after``: resources the release waits for (node groups, the storage driver), so
    its volume can bind.
    """

    k8s_provider: k8s.Provider
    settings: MonitoringSettings = field(default_factory=MonitoringSettings)
    namespace: str = "monitoring"
    triton_namespace: str = "triton"
    dcgm_namespace: str = "gpu-system"
    slos: LatencySlos = field(default_factory=LatencySlos)
    model_roles: Mapping[str, str] = field(default_factory=dict)
    runbook_base_url: str | None = None
    after: Sequence[pulumi.Resource] = ()


def namespace_manifest(namespace: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": namespace,
            "labels": {
                # node-exporter (part of the chart) needs the host's network, PID namespace
                # and filesystem: only the privileged level admits it. Warnings flag anything
                # else beyond baseline.
                "pod-security.kubernetes.io/enforce": "privileged",
                "pod-security.kubernetes.io/warn": "baseline",
                **PART_OF,
            },
        }
    }


def _service_url(service: str, namespace: pulumi.Output[str], port: int) -> pulumi.Output[str]:
    return namespace.apply(lambda ns: f"http://{service}.{ns}.svc.cluster.local:{port}")


def _load_balancer_url(status: Any) -> str | None:
    """``http://<host>`` of a LoadBalancer Service once AWS has provisioned it, else None."""
    ingress = getattr(getattr(status, "load_balancer", None), "ingress", None) or []
    for entry in ingress:
        host = getattr(entry, "hostname", None) or getattr(entry, "ip", None)
        if host:
            return f"http://{host}"
    return None


class Monitoring(pulumi.ComponentResource):
    """kube-prometheus-stack, scraping, rules and dashboards of one environment (see module doc)."""

    grafana_url: pulumi.Output[str]
    prometheus_url: pulumi.Output[str]
    alertmanager_url: pulumi.Output[str]
    grafana_external_url: pulumi.Output[str | None]
    grafana_admin_secret: pulumi.Output[str]
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # Everything that can be wrong with the inputs fails here, before any resource
        # (this component included) is registered.
        check_namespace("namespace", args.namespace)
        rule_files = render_rule_files(args.slos, args.runbook_base_url, args.settings.voice_slo)
        triton_monitor = triton_service_monitor_spec(args.triton_namespace, args.model_roles)
        dcgm_monitor = dcgm_service_monitor_spec(args.dcgm_namespace)
        dashboards = build_dashboards()

        super().__init__("platform:monitoring:Monitoring", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider)

        namespace = k8s.core.v1.Namespace(f"{name}-namespace", **namespace_manifest(args.namespace), opts=on_cluster)
        # Children take the namespace from this Output, so they wait for it to exist.
        self.namespace = namespace.metadata.name

        password = random.RandomPassword(
            f"{name}-grafana-admin-password",
            length=32,
            # Letters and digits only: 190 bits, and nothing a shell or URL must escape.
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        admin_secret = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": self.namespace, "labels": dict(PART_OF)},
            type="Opaque",
            string_data={
                chart_values.GRAFANA_ADMIN_USER_KEY: GRAFANA_ADMIN_USER,
                chart_values.GRAFANA_ADMIN_PASSWORD_KEY: password.result,
            },
            opts=on_cluster,
        )
        self.grafana_admin_secret = admin_secret.metadata.name

        chart = versions.KUBE_PROMETHEUS_STACK_CHART
        release = k8s.helm.v3.Release(
            f"{name}-kube-prometheus-stack",
            name=chart_values.RELEASE_NAME,  # fixed: Service names and selectors depend on it
            **release_chart(chart),
            namespace=self.namespace,
            values=chart_values.kube_prometheus_stack_values(args.settings, GRAFANA_ADMIN_SECRET, args.namespace),
            timeout=RELEASE_TIMEOUT_S,
            opts=pulumi.ResourceOptions.merge(
                on_cluster, pulumi.ResourceOptions(depends_on=[admin_secret, *args.after])
            ),
        )

        # ServiceMonitors and PrometheusRules are custom resources whose definitions the
        # chart installs: they wait for the release.
        after_release = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=[release]))
        selected = {**chart_values.SELECTOR_LABELS, **PART_OF}
        for monitor_name, spec in (("triton", triton_monitor), ("dcgm-exporter", dcgm_monitor)):
            k8s.apiextensions.CustomResource(
                f"{name}-{monitor_name}-monitor",
                api_version=MONITORING_API_VERSION,
                kind="ServiceMonitor",
                metadata={"name": monitor_name, "namespace": self.namespace, "labels": selected},
                spec=spec,
                opts=after_release,
            )
        for stem, content in rule_files.items():
            k8s.apiextensions.CustomResource(
                f"{name}-rules-{stem}",
                api_version=MONITORING_API_VERSION,
                kind="PrometheusRule",
                metadata={"name": f"platform-{stem}", "namespace": self.namespace, "labels": selected},
                spec={"groups": content["groups"]},
                opts=after_release,
            )

        for uid, model in dashboards.items():
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{uid}",
                metadata={
                    "name": f"dashboard-{uid}",
                    "namespace": self.namespace,
                    "labels": {chart_values.DASHBOARD_LABEL: chart_values.DASHBOARD_LABEL_VALUE, **PART_OF},
                },
                data={f"{uid}.json": dashboard_json(model)},
                opts=on_cluster,
            )

        self.grafana_url = _service_url(chart_values.GRAFANA_SERVICE, self.namespace, chart_values.GRAFANA_PORT)
        self.prometheus_url = _service_url(
            chart_values.PROMETHEUS_SERVICE, self.namespace, chart_values.PROMETHEUS_PORT
        )
        self.alertmanager_url = _service_url(
            chart_values.ALERTMANAGER_SERVICE, self.namespace, chart_values.ALERTMANAGER_PORT
        )
        if args.settings.expose_grafana:
            # The chart creates the Service; read it back for the address AWS assigns.
            grafana_service = k8s.core.v1.Service.get(
                f"{name}-grafana-service",
                pulumi.Output.concat(self.namespace, "/", chart_values.GRAFANA_SERVICE),
                opts=pulumi.ResourceOptions(parent=self, provider=args.k8s_provider, depends_on=[release]),
            )
            self.grafana_external_url = grafana_service.status.apply(_load_balancer_url)
        else:
            self.grafana_external_url = pulumi.Output.from_input(None)

        self.register_outputs(
            {
                "namespace": self.namespace,
                "grafana_url": self.grafana_url,
                "prometheus_url": self.prometheus_url,
                "alertmanager_url": self.alertmanager_url,
                "grafana_external_url": self.grafana_external_url,
                "grafana_admin_secret": self.grafana_admin_secret,
            }
        )
