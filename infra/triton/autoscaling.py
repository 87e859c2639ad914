"""Autoscaling of the Triton pools: pods on queue time, GPU nodes on pending pods.

Pods: a HorizontalPodAutoscaler per pool on an Object metric of the pool's Service,
``triton_queue_ms_per_request`` = the pool's total queue time over its total successful requests
(all models, all pods, last 2 minutes). It is request-weighted on purpose: the mean of per-model
means under-reports queueing when a busy model shares a pod with idle ones (one model at 100 req/s
waiting 1 ms and one at 1 req/s waiting 100 ms average 50 ms per model, but requests wait 2 ms),
and GPU utilisation says nothing about latency (a GPU at 100% with an empty queue is healthy).
prometheus-adapter (pinned chart, ``platform_spec.versions.PROMETHEUS_ADAPTER_CHART``) serves the metric from
kube-prometheus-stack's Prometheus through ``custom.metrics.k8s.io``; :func:`adapter_rule` is the
rule and a test evaluates its query with promtool. Bounds and the target per pool are
``TritonSettings.pools[*].min_replicas / max_replicas / target_queue_ms``.

GPU nodes: Cluster Autoscaler (pinned chart ``CLUSTER_AUTOSCALER_CHART``), not Karpenter. The GPU
pools are EKS managed node groups already (launch templates with IMDSv2, taints, labels, the NVIDIA
AMI), and EKS tags their Auto Scaling groups for Cluster Autoscaler's auto-discovery; Cluster
Autoscaler grows and shrinks exactly those groups within their min/max from the stack config, and
reads labels and taints of a group scaled to zero from the EKS API. Karpenter would replace the node
groups with its own NodePools and launch instances itself: a second, parallel definition of the
GPU nodes. It earns its keep with many instance types or spot diversification, which these pools
(one GPU SKU each, because an engine runs on one compute capability) do not have.
Cluster Autoscaler runs on the system nodes with its own Pod Identity role: describe the groups,
and set capacity or terminate instances only of groups tagged as this cluster's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.charts import release_chart
from infra.monitoring.chart_values import PROMETHEUS_PORT, PROMETHEUS_SERVICE
from infra.scheduling import system_node_labels
from infra.triton.deployment import pool_resource_name
from platform_spec import versions
from platform_spec.serving import PoolServing, TritonSettings
from platform_spec.settings import GpuPool

QUEUE_METRIC = "triton_queue_ms_per_request"
RATE_WINDOW = "2m"  # 8 scrapes at the 15 s interval: steady enough, still reacts within minutes
ADAPTER_RELEASE = "prometheus-adapter"


def adapter_rule() -> dict[str, Any]:
    """prometheus-adapter custom rule: the pool's request-weighted queue time in ms, per Service.

    Series carry ``namespace`` and ``service`` (the ServiceMonitor's target labels), so the adapter
    can describe the metric on the Triton Service; ``<<.LabelMatchers>>`` selects that Service's pods.
    """
    queue = f"rate(nv_inference_queue_duration_us{{<<.LabelMatchers>>}}[{RATE_WINDOW}])"
    requests = f"rate(nv_inference_request_success{{<<.LabelMatchers>>}}[{RATE_WINDOW}])"
    return {
        "seriesQuery": 'nv_inference_queue_duration_us{namespace!="",service!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "service": {"resource": "service"}}},
        "name": {"matches": "^nv_inference_queue_duration_us$", "as": QUEUE_METRIC},
        # µs -> ms; an idle pool (no requests) reads 0 instead of NaN, so the HPA can scale it down.
        "metricsQuery": (
            f"(sum by (<<.GroupBy>>) ({queue}) / 1000)"
            f" / clamp_min(sum by (<<.GroupBy>>) ({requests}), 1e-9)"
        ),
    }


def expand_adapter_query(query: str, label_matchers: Mapping[str, str], group_by: str) -> str:
    """What prometheus-adapter sends to Prometheus for one object (used by tests and for debugging)."""
    matchers = ",".join(f'{k}="{v}"' for k, v in label_matchers.items())
    return query.replace("<<.LabelMatchers>>", matchers).replace("<<.GroupBy>>", group_by)


def prometheus_url(settings: TritonSettings) -> str:
    """The configured Prometheus URL, or kube-prometheus-stack's Service in the monitoring namespace."""
    if settings.prometheus_url is not None:
        return settings.prometheus_url
    return f"http://{PROMETHEUS_SERVICE}.{settings.monitoring_namespace}.svc:{PROMETHEUS_PORT}"


def adapter_values(settings: TritonSettings) -> dict[str, Any]:
    configured = prometheus_url(settings)
    url, _, port = configured.rpartition(":")
    if not port.isdigit():
        url, port = configured, "80"
    return {
        "prometheus": {"url": url, "port": int(port), "path": ""},
        "rules": {"default": False, "custom": [adapter_rule()], "external": [], "resource": {}},
        "replicas": 2,
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
        "nodeSelector": system_node_labels(),
        "priorityClassName": "system-cluster-critical",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def _quantity_ms(ms: float) -> str:
    milli = round(ms * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def hpa_manifest(pool: GpuPool, serving: PoolServing, settings: TritonSettings) -> dict[str, Any]:
    name = pool_resource_name(pool)
    # Scale up fast (a queue means callers wait now), down slowly (a new GPU pod costs a model load).
    scale_up_pods = max(1, math.ceil(serving.max_replicas / 4))
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": {"platform.io/pool": pool.name}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": serving.min_replicas,
            "maxReplicas": serving.max_replicas,
            "metrics": [
                {
                    "type": "Object",
                    "object": {
                        "describedObject": {"apiVersion": "v1", "kind": "Service", "name": name},
                        "metric": {"name": QUEUE_METRIC},
                        "target": {"type": "Value", "value": _quantity_ms(serving.target_queue_ms)},
                    },
                }
            ],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 60,
                    "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": scale_up_pods, "periodSeconds": 120}],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": 600,
                    "selectPolicy": "Min",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
                },
            },
        },
    }


class QueueTimeAutoscaling(pulumi.ComponentResource):
    """prometheus-adapter with the queue-time rule (HPAs themselves belong to each pool)."""

    def __init__(
        self,
        name: str,
        *,
        settings: TritonSettings,
        k8s_provider: k8s.Provider,
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("platform:triton:QueueTimeAutoscaling", name, None, opts)
        chart = versions.PROMETHEUS_ADAPTER_CHART
        self.adapter = k8s.helm.v3.Release(
            f"{name}-prometheus-adapter",
            name=ADAPTER_RELEASE,
            **release_chart(chart),
            namespace=settings.monitoring_namespace,
            values=adapter_values(settings),
            cleanup_on_fail=True,
            max_history=10,
            timeout=600,
            # Its namespace and the Prometheus it reads belong to the monitoring stack (in ``after``):
            # a dependency of the release itself, not only of this component, so the edge is in the state.
            opts=pulumi.ResourceOptions(parent=self, provider=k8s_provider, depends_on=list(after)),
        )
        self.register_outputs({"metric": QUEUE_METRIC})
