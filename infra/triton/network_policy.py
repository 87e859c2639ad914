"""NetworkPolicies of the Triton namespace: deny everything, then allow exactly what serving needs.

Ingress to Triton pods:
  * 8000/8001 from namespaces labelled ``platform.io/triton-client=true`` (settings: client label),
  * 8000/8001 from Triton pods and the smoke Job in this namespace (the voice pipeline of one pool
    calls the LLM pool over gRPC; the smoke Job checks every model),
  * 8000/8001 from the internal NLB's source CIDRs when the NLB is on,
  * 8002 (metrics) from the monitoring namespace only.
Egress from Triton pods: DNS, HTTPS anywhere (S3 and STS have no fixed address range a
NetworkPolicy could name), and gRPC/HTTP to Triton pods of this namespace.
Egress from the smoke Job: DNS and Triton's 8000/8001.
Kubelet probes are not affected: the VPC CNI's policy agent always admits the node's own IP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from platform_spec.serving import TritonSettings

NAME_LABEL = "app.kubernetes.io/name"
TRITON_NAME = "triton"
SMOKE_NAME = "triton-smoke"
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _ports(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def _meta(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "triton-platform"}}


def network_policies(settings: TritonSettings) -> list[dict[str, Any]]:
    """Every NetworkPolicy of the namespace, as Kubernetes objects."""
    ns = settings.namespace
    client_key, client_value = settings.client_namespace_label
    triton_pods = {"matchLabels": {NAME_LABEL: TRITON_NAME}}
    dns = {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    callers = [TRITON_NAME, SMOKE_NAME]
    in_namespace_callers = {"matchExpressions": [{"key": NAME_LABEL, "operator": "In", "values": callers}]}
    monitoring = {"matchLabels": {NAMESPACE_NAME_LABEL: settings.monitoring_namespace}}
    serving_from: list[dict[str, Any]] = [
        {"namespaceSelector": {"matchLabels": {client_key: client_value}}},
        {"podSelector": in_namespace_callers},
    ]
    serving_from += [{"ipBlock": {"cidr": cidr}} for cidr in _nlb_sources(settings)]
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("default-deny", ns),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("triton-serving", ns),
            "spec": {
                "podSelector": triton_pods,
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    {"from": serving_from, "ports": _ports(HTTP_PORT, GRPC_PORT)},
                    {"from": [{"namespaceSelector": monitoring}], "ports": _ports(METRICS_PORT)},
                ],
                "egress": [
                    dns,
                    {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": _ports(443)},
                    {"to": [{"podSelector": triton_pods}], "ports": _ports(HTTP_PORT, GRPC_PORT)},
                ],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("triton-smoke", ns),
            "spec": {
                "podSelector": {"matchLabels": {NAME_LABEL: SMOKE_NAME}},
                "policyTypes": ["Ingress", "Egress"],
                "egress": [dns, {"to": [{"podSelector": triton_pods}], "ports": _ports(HTTP_PORT, GRPC_PORT)}],
            },
        },
    ]


def _nlb_sources(settings: TritonSettings) -> Sequence[str]:
    return settings.nlb_source_cidrs if settings.internal_nlb else ()
