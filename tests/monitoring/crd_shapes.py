"""Structural checks of prometheus-operator custom resources.

kubernetes-validate ships schemas for Kubernetes' own kinds only, not for CRDs such as
ServiceMonitor and PrometheusRule. These checks cover what the operator's CRDs
(monitoring.coreos.com/v1, as installed by kube-prometheus-stack) require of the fields
we set: required fields, types, patterns and enums, and no unknown keys. Unknown keys
matter most: the API server prunes fields a structural CRD schema does not know, so a
misspelled ``metricRelabelings`` would be dropped silently.
"""

from __future__ import annotations

import re
from typing import Any

DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RELABEL_ACTIONS = {
    "replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod", "labelmap", "LabelMap",
    "labeldrop", "LabelDrop", "labelkeep", "LabelKeep", "lowercase", "Lowercase", "uppercase", "Uppercase",
    "keepequal", "KeepEqual", "dropequal", "DropEqual",
}  # fmt: skip
RELABEL_KEYS = {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"}
ENDPOINT_KEYS = {
    "port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout", "honorLabels",
    "honorTimestamps", "relabelings", "metricRelabelings", "followRedirects", "enableHttp2", "filterRunning",
    "tlsConfig", "authorization", "basicAuth", "bearerTokenSecret", "oauth2", "proxyUrl", "trackTimestampsStaleness",
}  # fmt: skip
SERVICE_MONITOR_SPEC_KEYS = {
    "jobLabel", "targetLabels", "podTargetLabels", "endpoints", "selector", "namespaceSelector", "sampleLimit",
    "targetLimit", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit", "attachMetadata", "scrapeClass",
    "scrapeProtocols", "keepDroppedTargets", "bodySizeLimit", "fallbackScrapeProtocol", "selectorMechanism",
}  # fmt: skip
RULE_KEYS = {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
GROUP_KEYS = {"name", "interval", "rules", "partial_response_strategy", "limit", "query_offset", "labels"}


def _string_map(value: Any, where: str, errors: list[str]) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        errors.append(f"{where}: must be a map of strings, got {value!r}")


def _unknown(value: dict[str, Any], allowed: set[str], where: str, errors: list[str]) -> None:
    for key in sorted(set(value) - allowed):
        errors.append(f"{where}.{key}: unknown field (the API server would prune it)")


def _metadata(obj: dict[str, Any], errors: list[str]) -> None:
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata.get("name"), str) or not DNS_LABEL.match(metadata["name"]):
        errors.append(f"metadata.name: {metadata.get('name')!r} is not a DNS label")
    if not isinstance(metadata.get("namespace"), str):
        errors.append("metadata.namespace: required for a namespaced resource")
    _string_map(metadata.get("labels", {}), "metadata.labels", errors)


def _relabelings(value: Any, where: str, errors: list[str]) -> None:
    if not isinstance(value, list):
        errors.append(f"{where}: must be a list")
        return
    for index, rule in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(rule, dict):
            errors.append(f"{at}: must be an object")
            continue
        _unknown(rule, RELABEL_KEYS, at, errors)
        for label in rule.get("sourceLabels", []):
            if not isinstance(label, str) or not LABEL_NAME.match(label):
                errors.append(f"{at}.sourceLabels: {label!r} is not a label name")
        if "action" in rule and rule["action"] not in RELABEL_ACTIONS:
            errors.append(f"{at}.action: {rule['action']!r} is not one of the operator's actions")
        for key in ("targetLabel", "regex", "replacement", "separator"):
            if key in rule and not isinstance(rule[key], str):
                errors.append(f"{at}.{key}: must be a string")


def service_monitor_errors(obj: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    if obj.get("apiVersion") != "monitoring.coreos.com/v1" or obj.get("kind") != "ServiceMonitor":
        errors.append("apiVersion/kind: must be monitoring.coreos.com/v1 ServiceMonitor")
    _metadata(obj, errors)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [*errors, "spec: required"]
    _unknown(spec, SERVICE_MONITOR_SPEC_KEYS, "spec", errors)
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        errors.append("spec.selector: required")
    else:
        _unknown(selector, {"matchLabels", "matchExpressions"}, "spec.selector", errors)
        _string_map(selector.get("matchLabels", {}), "spec.selector.matchLabels", errors)
    namespaces = spec.get("namespaceSelector", {})
    _unknown(namespaces, {"any", "matchNames"}, "spec.namespaceSelector", errors)
    if not all(isinstance(name, str) for name in namespaces.get("matchNames", [])):
        errors.append("spec.namespaceSelector.matchNames: must be a list of strings")
    if "jobLabel" in spec and not isinstance(spec["jobLabel"], str):
        errors.append("spec.jobLabel: must be a string")
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        errors.append("spec.endpoints: required, a non-empty list")
        return errors
    for index, endpoint in enumerate(endpoints):
        at = f"spec.endpoints[{index}]"
        _unknown(endpoint, ENDPOINT_KEYS, at, errors)
        for key in ("port", "path", "scheme"):
            if key in endpoint and not isinstance(endpoint[key], str):
                errors.append(f"{at}.{key}: must be a string")
        for key in ("interval", "scrapeTimeout"):
            if key in endpoint and not DURATION.match(str(endpoint[key])):
                errors.append(f"{at}.{key}: {endpoint[key]!r} is not a duration")
        if "honorLabels" in endpoint and not isinstance(endpoint["honorLabels"], bool):
            errors.append(f"{at}.honorLabels: must be a boolean")
        for key in ("relabelings", "metricRelabelings"):
            if key in endpoint:
                _relabelings(endpoint[key], f"{at}.{key}", errors)
    return errors


def prometheus_rule_errors(obj: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    if obj.get("apiVersion") != "monitoring.coreos.com/v1" or obj.get("kind") != "PrometheusRule":
        errors.append("apiVersion/kind: must be monitoring.coreos.com/v1 PrometheusRule")
    _metadata(obj, errors)
    spec = obj.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("groups"), list):
        return [*errors, "spec.groups: required, a list"]
    _unknown(spec, {"groups"}, "spec", errors)
    names = [group.get("name") for group in spec["groups"]]
    if len(names) != len(set(names)):
        errors.append(f"spec.groups: group names must be unique, got {names}")
    for g, group in enumerate(spec["groups"]):
        at = f"spec.groups[{g}]"
        _unknown(group, GROUP_KEYS, at, errors)
        if not isinstance(group.get("name"), str) or not group["name"]:
            errors.append(f"{at}.name: required, non-empty")
        for r, rule in enumerate(group.get("rules") or []):
            rat = f"{at}.rules[{r}]"
            _unknown(rule, RULE_KEYS, rat, errors)
            if not isinstance(rule.get("expr"), str | int) or rule.get("expr") == "":
                errors.append(f"{rat}.expr: required")
            if ("record" in rule) == ("alert" in rule):
                errors.append(f"{rat}: exactly one of record and alert")
            if "for" in rule and not DURATION.match(str(rule["for"])):
                errors.append(f"{rat}.for: {rule['for']!r} is not a duration")
            for key in ("labels", "annotations"):
                if key in rule:
                    _string_map(rule[key], f"{rat}.{key}", errors)
    return errors
