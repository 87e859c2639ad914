"""What Prometheus scrapes: the ServiceMonitor specs for Triton and the DCGM exporter.

The Triton monitor also attaches each model's ``role`` (asr, tts, llm, ...) to its
series by metric relabelling, from the model catalog's name -> role map: Triton's
metrics carry only ``model`` and ``version``, and the per-role SLO alerts and the
voice-pipeline dashboard need the role. The same relabel rules are offered in plain
Prometheus form, so a local Prometheus scraping a local Triton labels series exactly
as the cluster does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from infra.monitoring.slos import MonitoringSettingsError

# Contract with the Triton Services (labels and port name) and the DCGM exporter chart.
TRITON_SERVICE_SELECTOR = {"app.kubernetes.io/name": "triton"}
TRITON_METRICS_PORT = "metrics"
DCGM_SERVICE_SELECTOR = {"app.kubernetes.io/name": "dcgm-exporter"}
DCGM_METRICS_PORT = "metrics"
# jobLabel makes the job label the value of this Service label: "triton" and
# "dcgm-exporter", the names the alert rules select on.
JOB_LABEL = "app.kubernetes.io/name"
TRITON_JOB = TRITON_SERVICE_SELECTOR[JOB_LABEL]
DCGM_JOB = DCGM_SERVICE_SELECTOR[JOB_LABEL]

# Flags the Triton containers must run with for the rules and dashboards to have data:
# per-model latency summaries (p50/p99 request latency) and the first-response histogram
# of decoupled models (time to first token / first audio chunk; Triton >= 2.5x releases).
TRITON_METRICS_ARGS = ("--metrics-config=summary_latencies=true", "--metrics-config=histogram_latencies=true")

MODEL_ROLES = ("llm", "asr", "tts", "vad", "anc", "embed", "retriever", "pipeline")
SCRAPE_INTERVAL = "15s"

# Triton model names: letters, digits, '_', '-', '.'; no path separators.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# Every series scraped from a pod gets the Kubernetes node it runs on.
_NODE_FROM_POD = {
    "sourceLabels": ["__meta_kubernetes_pod_node_name"],
    "targetLabel": "node",
    "action": "replace",
}


def check_namespace(key: str, value: str) -> None:
    if not isinstance(value, str) or len(value) > 63 or not _NAMESPACE.match(value):
        raise MonitoringSettingsError(
            f"monitoring setting {key}={value!r} is invalid: use a Kubernetes namespace name "
            "(lowercase letters, digits and '-', at most 63 characters)"
        )


def role_relabelings(model_roles: Mapping[str, str]) -> list[dict[str, Any]]:
    """Metric relabel rules (prometheus-operator form) that set ``role`` from ``model``.

    One rule per role, in a stable order. Models absent from the map keep no role.
    """
    by_role: dict[str, list[str]] = {}
    for model, role in model_roles.items():
        if not isinstance(model, str) or not _MODEL_NAME.match(model):
            raise MonitoringSettingsError(
                f"monitoring setting model_roles has model name {model!r}: use the Triton model name "
                "from the catalog (letters, digits, '_', '-', '.')"
            )
        if role not in MODEL_ROLES:
            raise MonitoringSettingsError(
                f"monitoring setting model_roles[{model!r}]={role!r} is invalid: use one of {', '.join(MODEL_ROLES)}"
            )
        by_role.setdefault(role, []).append(model)
    return [
        {
            "sourceLabels": ["model"],
            # Prometheus anchors relabel regexes; escaping keeps '.' in names literal.
            "regex": "|".join(re.escape(name) for name in sorted(by_role[role])),
            "targetLabel": "role",
            "replacement": role,
            "action": "replace",
        }
        for role in MODEL_ROLES
        if role in by_role
    ]


def triton_service_monitor_spec(triton_namespace: str, model_roles: Mapping[str, str]) -> dict[str, Any]:
    """ServiceMonitor spec scraping every Triton Service's ``metrics`` port (8002)."""
    check_namespace("triton_namespace", triton_namespace)
    return {
        "jobLabel": JOB_LABEL,
        "selector": {"matchLabels": dict(TRITON_SERVICE_SELECTOR)},
        "namespaceSelector": {"matchNames": [triton_namespace]},
        "endpoints": [
            {
                "port": TRITON_METRICS_PORT,
                "path": "/metrics",
                "interval": SCRAPE_INTERVAL,
                "relabelings": [dict(_NODE_FROM_POD)],
                "metricRelabelings": role_relabelings(model_roles),
            }
        ],
    }


def dcgm_service_monitor_spec(dcgm_namespace: str) -> dict[str, Any]:
    """ServiceMonitor spec scraping the DCGM exporter chart's Service (port ``metrics``, 9400).

    ``honorLabels`` stays off: the exporter labels GPU series with the namespace and
    pod of the workload using the GPU, which Prometheus then keeps as
    ``exported_namespace`` / ``exported_pod`` beside the exporter's own target labels.
    """
    check_namespace("dcgm_namespace", dcgm_namespace)
    return {
        "jobLabel": JOB_LABEL,
        "selector": {"matchLabels": dict(DCGM_SERVICE_SELECTOR)},
        "namespaceSelector": {"matchNames": [dcgm_namespace]},
        "endpoints": [
            {
                "port": DCGM_METRICS_PORT,
                "path": "/metrics",
                "interval": SCRAPE_INTERVAL,
                "honorLabels": False,
                "relabelings": [dict(_NODE_FROM_POD)],
            }
        ],
    }


_PROMETHEUS_RELABEL_KEYS = {
    "sourceLabels": "source_labels",
    "targetLabel": "target_label",
    "regex": "regex",
    "replacement": "replacement",
    "action": "action",
    "separator": "separator",
    "modulus": "modulus",
}


def to_prometheus_relabel_configs(relabelings: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The same relabel rules in a plain Prometheus ``*relabel_configs`` form."""
    return [{_PROMETHEUS_RELABEL_KEYS[key]: value for key, value in rule.items()} for rule in relabelings]


def service_monitor_selects(
    spec: Mapping[str, Any], service_namespace: str, service_labels: Mapping[str, str], port_names: Iterable[str]
) -> bool:
    """Whether a ServiceMonitor spec would scrape a Service (namespace, labels, named port).

    Lets any test check a declared Service against the monitor without a cluster.
    """
    names = spec.get("namespaceSelector", {}).get("matchNames")
    if names is not None and service_namespace not in names:
        return False
    wanted = spec["selector"].get("matchLabels", {})
    if any(service_labels.get(key) != value for key, value in wanted.items()):
        return False
    ports = set(port_names)
    return all(endpoint.get("port") in ports for endpoint in spec["endpoints"])
