"""Helm values for the kube-prometheus-stack release, from ``MonitoringSettings``.

Names are pinned (release, fullname overrides) so the in-cluster Service names, and
therefore the URLs the stack exports, do not depend on the chart's name truncation.
"""

from __future__ import annotations

from typing import Any

from platform_spec.settings import MonitoringSettings

RELEASE_NAME = "kube-prometheus-stack"
# The chart's fullname (truncated at 26 characters by the chart): Prometheus' Service is
# "<fullname>-prometheus", Alertmanager's "<fullname>-alertmanager".
FULLNAME = "kps"
GRAFANA_FULLNAME = "grafana"
PROMETHEUS_SERVICE = f"{FULLNAME}-prometheus"
PROMETHEUS_PORT = 9090
ALERTMANAGER_SERVICE = f"{FULLNAME}-alertmanager"
ALERTMANAGER_PORT = 9093
GRAFANA_SERVICE = GRAFANA_FULLNAME
GRAFANA_PORT = 80

# Prometheus selects ServiceMonitors, PodMonitors and PrometheusRules carrying this
# label (the chart's own monitors carry it too); ours are labelled the same.
SELECTOR_LABELS = {"release": RELEASE_NAME}

# Keys of the Grafana admin Secret, as the Grafana chart reads them.
GRAFANA_ADMIN_USER_KEY = "admin-user"
GRAFANA_ADMIN_PASSWORD_KEY = "admin-password"

# The Grafana sidecar loads every ConfigMap with this label as dashboards.
DASHBOARD_LABEL = "grafana_dashboard"
DASHBOARD_LABEL_VALUE = "1"

# Internal AWS load balancer for Grafana when it is exposed: reachable from the VPC
# (VPN, peered networks), never from the internet.
INTERNAL_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
}


# Requests sized for the platform's load (a few dozen Triton pods and GPU nodes), memory limits against leaks;
# no CPU limits (throttling a scraper or the operator helps nothing). Prometheus' memory is a setting.
_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "operator": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    "config_reloader": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
    "alertmanager": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    "kube_state_metrics": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    "node_exporter": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    "grafana": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "webhook_cert_job": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
    "grafana_sidecar": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
}


def kube_prometheus_stack_values(
    settings: MonitoringSettings, grafana_admin_secret: str, dashboard_namespace: str
) -> dict[str, Any]:
    """The release's values. Only settings-driven and security-relevant keys are set;
    everything else keeps the pinned chart's defaults."""
    selector = {"matchLabels": dict(SELECTOR_LABELS)}
    alertmanager_spec: dict[str, Any] = {}
    if settings.alertmanager_config_secret is not None:
        # The chart then creates no config Secret of its own; the operator reads ours.
        alertmanager_spec = {"useExistingSecret": True, "configSecret": settings.alertmanager_config_secret}

    grafana_service: dict[str, Any] = {"type": "ClusterIP", "port": GRAFANA_PORT}
    if settings.expose_grafana:
        grafana_service = {"type": "LoadBalancer", "port": GRAFANA_PORT, "annotations": dict(INTERNAL_LB_ANNOTATIONS)}

    return {
        "fullnameOverride": FULLNAME,
        # EKS runs these control-plane components where nothing in the cluster can scrape them: their
        # ServiceMonitors would find no target and the chart's absent(up{...}) alerts would fire forever.
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeEtcd": {"enabled": False},
        "prometheusOperator": {
            "resources": _RESOURCES["operator"],
            # The one-shot Jobs that create and patch the admission webhook's certificate.
            "admissionWebhooks": {
                "patch": {
                    "resources": _RESOURCES["webhook_cert_job"],
                    # The chart's default UID 2000 may belong to a node user; nobody's UID owns nothing.
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "runAsGroup": 65534,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                }
            },
            "prometheusConfigReloader": {"resources": _RESOURCES["config_reloader"]},
        },
        "kube-state-metrics": {"resources": _RESOURCES["kube_state_metrics"]},
        # Host metrics from every node, the tainted GPU nodes included (the chart tolerates no taint by default).
        "prometheus-node-exporter": {
            "resources": _RESOURCES["node_exporter"],
            # Host namespaces are what it measures (the chart's hostPID/hostNetwork); nothing else is granted.
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "runAsGroup": 65534,
                "fsGroup": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containerSecurityContext": {
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
            "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
        },
        "prometheus": {
            "prometheusSpec": {
                "replicas": settings.replicas,
                "resources": {
                    "requests": {"cpu": "500m", "memory": settings.prometheus_memory},
                    "limits": {"memory": settings.prometheus_memory},
                },
                "retention": settings.retention,
                "retentionSize": settings.retention_size,
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "storageClassName": settings.storage_class,
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{settings.storage_gib}Gi"}},
                        }
                    }
                },
                # Explicit selectors (all namespaces) instead of the chart's implicit
                # ones, so what Prometheus picks up is visible here and tested.
                "serviceMonitorSelector": selector,
                "serviceMonitorNamespaceSelector": {},
                "podMonitorSelector": selector,
                "podMonitorNamespaceSelector": {},
                "ruleSelector": selector,
                "ruleNamespaceSelector": {},
            }
        },
        "alertmanager": {
            "alertmanagerSpec": {
                **alertmanager_spec,
                "replicas": settings.replicas,
                "resources": _RESOURCES["alertmanager"],
            }
        },
        "grafana": {
            "fullnameOverride": GRAFANA_FULLNAME,
            # No `helm test` Pod: nothing runs Helm tests here, and the Pod would be one more unhardened object.
            "testFramework": {"enabled": False},
            "admin": {
                "existingSecret": grafana_admin_secret,
                "userKey": GRAFANA_ADMIN_USER_KEY,
                "passwordKey": GRAFANA_ADMIN_PASSWORD_KEY,
            },
            "grafana.ini": {
                "auth.anonymous": {"enabled": False},
                "users": {"allow_sign_up": False},
            },
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": DASHBOARD_LABEL,
                    "labelValue": DASHBOARD_LABEL_VALUE,
                    "searchNamespace": [dashboard_namespace],
                },
                "resources": _RESOURCES["grafana_sidecar"],
            },
            "service": grafana_service,
            # The Prometheus selects ServiceMonitors by the release label; the subchart's has none.
            "serviceMonitor": {"labels": dict(SELECTOR_LABELS)},
            "resources": _RESOURCES["grafana"],
        },
    }
