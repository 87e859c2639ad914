"""Autoscaling of the Triton pools: pods on what callers feel (KEDA), GPU nodes on pending pods.

Pods: KEDA (pinned chart ``platform_spec.versions.KEDA_CHART``; it replaced prometheus-adapter, which upstream retires
in its favour) runs one ``ScaledObject`` per pool, whose HPA takes the largest replica count its Prometheus triggers
ask for. Every trigger is a latency over its target (metric type ``Value``: replicas grow in proportion to
value / target), each query answering 0 when the pool is idle so the pool can scale down:
- ``queue-time`` (every pool): the pool's request-weighted queue time per request in ms, over
  ``TritonSettings.pools[*].target_queue_ms``. Request-weighted on purpose: the mean of per-model means
  under-reports queueing when a busy model shares a pod with idle ones (one model at 100 req/s waiting 1 ms and one
  at 1 req/s waiting 100 ms average 50 ms per model, but requests wait 2 ms), and GPU utilisation says nothing
  about latency (a GPU at 100 % with an empty queue is healthy).
- ``time-to-first-audio`` (the pool serving the voice pipeline): the p95 from end of speech to first audio
  (the pipeline's ``voice_turn_time_to_first_audio_seconds``), over ``monitoring.voiceSlo``'s target.
- ``llm-first-token`` (pools serving an LLM): p99 time to the first token from Triton's first-response histogram,
  over the LLM latency SLO.
Scale-up is quick and scale-down waits 10 minutes, far longer than a turn, so a pod is not removed between the
turns of a conversation. A dev LLM pool may scale to zero (``minReplicas: 0``): then a ``wake-on-turns`` trigger
activates it when voice turns arrive (its threshold is so high it never drives scale-out). The cold start a caller
then waits is a GPU node (Cluster Autoscaler, typically 4-8 minutes on the NVIDIA AMI) plus the pool's model load
(its startup budget): dev only; prod pools keep at least one pod. The speech pool cannot scale to zero: with no pod,
none of its signals exist to wake it.

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
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.charts import release_chart
from infra.monitoring.chart_values import PROMETHEUS_PORT, PROMETHEUS_SERVICE, SELECTOR_LABELS
from infra.scheduling import system_node_labels
from infra.triton.deployment import pool_resource_name
from platform_spec import versions
from platform_spec.monitoring import VoiceSlo
from platform_spec.serving import PoolServing, TritonSettings
from platform_spec.settings import GpuPool

RATE_WINDOW = "2m"  # 8 scrapes at the 15 s interval: steady enough, still reacts within minutes
KEDA_RELEASE = "keda"
KEDA_NAMESPACE = "keda"
POLLING_INTERVAL_S = 15
SCALE_DOWN_STABILISATION_S = 600  # far longer than a turn: a conversation keeps its pods
WAKE_THRESHOLD = "1000000"  # turns/s: never reached, so the wake trigger only activates a pool at zero


def _idle_is_zero(expr: str) -> str:
    """``expr``, or 0 when it is NaN or absent (an idle pool): KEDA then sees a value it can scale down on."""
    return f"(({expr}) >= 0) or vector(0)"


def queue_ms_query(namespace: str, service: str) -> str:
    """The pool's request-weighted mean queue time per request, in ms (Triton's counters are in µs)."""
    selector = f'namespace="{namespace}",service="{service}"'
    queue = f"sum(rate(nv_inference_queue_duration_us{{{selector}}}[{RATE_WINDOW}]))"
    requests = f"sum(rate(nv_inference_request_success{{{selector}}}[{RATE_WINDOW}]))"
    return _idle_is_zero(f"({queue} / 1000) / {requests}")


def time_to_first_audio_query(pool: str) -> str:
    """p95 end of speech -> first audio of the voice turns on ``pool`` (seconds)."""
    buckets = f'sum by (le) (rate(voice_turn_time_to_first_audio_seconds_bucket{{pool="{pool}"}}[{RATE_WINDOW}]))'
    return _idle_is_zero(f"histogram_quantile(0.95, {buckets})")


def llm_first_token_query(namespace: str, service: str) -> str:
    """p99 time to the first streamed response of the pool's models (seconds; Triton's histogram is in ms)."""
    selector = f'namespace="{namespace}",service="{service}"'
    buckets = f"sum by (le) (rate(nv_inference_first_response_histogram_ms_bucket{{{selector}}}[{RATE_WINDOW}]))"
    return _idle_is_zero(f"histogram_quantile(0.99, {buckets}) / 1000")


def wake_on_turns_query() -> str:
    return f"sum(rate(voice_turns_total[{RATE_WINDOW}])) or vector(0)"


def prometheus_url(settings: TritonSettings) -> str:
    """The configured Prometheus URL, or kube-prometheus-stack's Service in the monitoring namespace."""
    if settings.prometheus_url is not None:
        return settings.prometheus_url
    return f"http://{PROMETHEUS_SERVICE}.{settings.monitoring_namespace}.svc:{PROMETHEUS_PORT}"


def keda_values() -> dict[str, Any]:
    """The KEDA release: on the system nodes, two operator replicas (one leader; the other takes over within
    seconds), its own metrics scraped by the platform's Prometheus."""
    operator_resources = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    return {
        "nodeSelector": system_node_labels(),
        "priorityClassName": "system-cluster-critical",
        "operator": {"replicaCount": 2},
        "podDisruptionBudget": {"operator": {"maxUnavailable": 1}},
        "resources": {
            "operator": operator_resources,
            "metricServer": operator_resources,
            "webhooks": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        },
        # A UID no image or node user has (the image's default is 1000, ec2-user on the nodes); fsGroup keeps the
        # mounted certificates readable.
        "podSecurityContext": {
            part: {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001}
            for part in ("operator", "metricServer", "webhooks")
        },
        "prometheus": {
            "operator": {"enabled": True, "serviceMonitor": {"enabled": True, "additionalLabels": SELECTOR_LABELS}},
            "metricServer": {"enabled": True, "serviceMonitor": {"enabled": True, "additionalLabels": SELECTOR_LABELS}},
        },
    }


def pool_triggers(
    pool: GpuPool, serving: PoolServing, settings: TritonSettings, roles: Sequence[str], slos: Any, voice: VoiceSlo
) -> list[dict[str, Any]]:
    """The KEDA Prometheus triggers of one pool (see the module docstring)."""
    service = pool_resource_name(pool)
    server = prometheus_url(settings)

    def trigger(name: str, query: str, threshold: str, metric_type: str = "Value") -> dict[str, Any]:
        return {
            "type": "prometheus",
            "name": name,
            "metricType": metric_type,
            "metadata": {"serverAddress": server, "query": query, "threshold": threshold},
        }

    triggers = [trigger("queue-time", queue_ms_query(settings.namespace, service), _number(serving.target_queue_ms))]
    if "pipeline" in roles:
        target = _number(voice.time_to_first_audio_seconds)
        triggers.append(trigger("time-to-first-audio", time_to_first_audio_query(pool.name), target))
    if "llm" in roles:
        query = llm_first_token_query(settings.namespace, service)
        triggers.append(trigger("llm-first-token", query, _number(slos.llm_p99_seconds)))
    if serving.min_replicas == 0:
        triggers.append(trigger("wake-on-turns", wake_on_turns_query(), WAKE_THRESHOLD, "AverageValue"))
    return triggers


def _number(value: float) -> str:
    return f"{value:g}"


def scaled_object_manifest(
    pool: GpuPool, serving: PoolServing, settings: TritonSettings, triggers: list[dict[str, Any]]
) -> dict[str, Any]:
    name = pool_resource_name(pool)
    # Scale up fast (a queue means callers wait now), down slowly (a new GPU pod costs a model load).
    scale_up_pods = max(1, math.ceil(serving.max_replicas / 4))
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": {"platform.io/pool": pool.name}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "pollingInterval": POLLING_INTERVAL_S,
            # Only used for scaling to zero: the last pod stays this long after the last activity.
            "cooldownPeriod": SCALE_DOWN_STABILISATION_S,
            "minReplicaCount": serving.min_replicas,
            "maxReplicaCount": serving.max_replicas,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "name": name,
                    "behavior": {
                        "scaleUp": {
                            "stabilizationWindowSeconds": 60,
                            "selectPolicy": "Max",
                            "policies": [{"type": "Pods", "value": scale_up_pods, "periodSeconds": 120}],
                        },
                        "scaleDown": {
                            "stabilizationWindowSeconds": SCALE_DOWN_STABILISATION_S,
                            "selectPolicy": "Min",
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
                        },
                    },
                }
            },
            "triggers": triggers,
        },
    }


class KedaAutoscaling(pulumi.ComponentResource):
    """KEDA, installed before the pools whose ScaledObjects need its CRDs (the ScaledObjects belong to each pool)."""

    def __init__(
        self,
        name: str,
        *,
        k8s_provider: k8s.Provider,
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("platform:triton:KedaAutoscaling", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=k8s_provider)
        # KEDA's pods are non-root, read-only, without capabilities, under the runtime's seccomp profile: restricted.
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": KEDA_NAMESPACE, "labels": {f"pod-security.kubernetes.io/{mode}": "restricted"
                                                         for mode in ("enforce", "warn", "audit")}},
            opts=on_cluster,
        )  # fmt: skip
        self.release = k8s.helm.v3.Release(
            f"{name}-keda",
            name=KEDA_RELEASE,
            **release_chart(versions.KEDA_CHART),
            namespace=KEDA_NAMESPACE,
            values=keda_values(),
            cleanup_on_fail=True,
            max_history=10,
            timeout=600,
            # Its ServiceMonitors need the monitoring stack's CRDs (in ``after``): a dependency of the release
            # itself, not only of this component, so the edge is in the state.
            opts=pulumi.ResourceOptions(parent=self, provider=k8s_provider, depends_on=[self.namespace, *after]),
        )
        self.register_outputs({"release": KEDA_RELEASE})
