"""Rules over Kubernetes workloads (Triton containers, secret env) and the Grafana Helm values."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .base import (
    _CRON_JOB,
    _DIGEST_RE,
    _POD,
    _SECRET_NAME_SEGMENTS,
    _SERVING_WORKLOADS,
    _TEMPLATED_WORKLOADS,
    HELM_CHARTS,
    HELM_RELEASE,
    UNKNOWN,
    Context,
    _as_list,
    _get,
    _truthy,
)

# --- Kubernetes workloads --------------------------------------------------------------------------


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec of a workload, wherever its kind keeps it."""
    if resource_type in _TEMPLATED_WORKLOADS:
        spec = _get(props, "spec", "template", "spec")
    elif resource_type == _CRON_JOB:
        spec = _get(props, "spec", "jobTemplate", "spec", "template", "spec")
    elif resource_type == _POD:
        spec = props.get("spec")
    else:
        return None
    return spec if isinstance(spec, Mapping) else None


def _containers(spec: Mapping[str, Any], *, init: bool = True) -> Iterator[tuple[str, Mapping[str, Any]]]:
    kinds = ("containers", "initContainers") if init else ("containers",)
    for kind in kinds:
        for container in _as_list(spec.get(kind)):
            if isinstance(container, Mapping):
                yield kind, container


def _labels(props: Mapping[str, Any]) -> dict[str, Any]:
    labels: dict[str, Any] = {}
    for path in (("metadata", "labels"), ("spec", "template", "metadata", "labels")):
        found = _get(props, *path)
        if isinstance(found, Mapping):
            labels.update(found)
    return labels


def _image_repository(image: str) -> str:
    """registry/path/name of an image reference, without tag or digest."""
    without_digest = image.split("@", 1)[0]
    last = without_digest.rsplit("/", 1)
    if ":" in last[-1]:
        without_digest = without_digest.rsplit(":", 1)[0]
    return without_digest


def is_triton_image(image: Any) -> bool:
    return isinstance(image, str) and "triton" in _image_repository(image).rsplit("/", 1)[-1].lower()


def _is_triton_workload(props: Mapping[str, Any]) -> bool:
    name = _labels(props).get("app.kubernetes.io/name")
    return isinstance(name, str) and name.lower().startswith("triton")


def triton_containers(resource_type: str, props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Triton server containers of a long-running workload.

    A container is Triton when its image is a Triton image, or when the workload is labelled
    app.kubernetes.io/name=triton* and the container is named triton* (sidecars stay out).
    """
    if resource_type not in _SERVING_WORKLOADS:
        return []
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    labelled = _is_triton_workload(props)
    found = []
    for _, container in _containers(spec, init=False):
        name = container.get("name")
        if is_triton_image(container.get("image")) or (
            labelled and isinstance(name, str) and name.lower().startswith("triton")
        ):
            found.append(container)
    return found


def check_triton_containers(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """Triton containers have startup/readiness/liveness probes, memory + CPU/GPU limits, an image by digest.

    Probes: a model load takes minutes, so without a startup probe the liveness probe kills the pod
    mid-load, and without readiness traffic reaches a server whose models are not loaded. Limits keep one
    pod from starving the node. A digest pins exactly the image (and TensorRT version) the engines were
    built for; a tag can move.
    """
    problems = []
    for container in triton_containers(resource_type, props):
        name = container.get("name", "<unnamed>")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if container.get(probe) is None:
                problems.append(f"container {name!r} has no {probe}; add one on /v2/health/ready or /v2/health/live")
        limits = _get(container, "resources", "limits")
        if limits is not UNKNOWN:
            limits = limits if isinstance(limits, Mapping) else {}
            missing = []
            if "memory" not in limits:
                missing.append("memory")
            if "cpu" not in limits and "nvidia.com/gpu" not in limits:
                missing.append("cpu or nvidia.com/gpu")
            if missing:
                problems.append(
                    f"container {name!r} resources.limits {dict(limits)} lacks {' and '.join(missing)}; set limits"
                )
        image = container.get("image")
        if image is not UNKNOWN and not (isinstance(image, str) and _DIGEST_RE.search(image)):
            problems.append(
                f"container {name!r} image {image!r} is not pinned by digest; use <repository>@sha256:<digest>"
            )
    return problems


def _is_secret_name(name: str) -> bool:
    segments = {s for s in re.split(r"[_\-.]+", name.upper()) if s}
    return bool(segments & _SECRET_NAME_SEGMENTS)


def check_plain_secret_env(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """Environment variables named like credentials come from a Secret (valueFrom), never a literal value.

    A literal `value` is stored in clear text in the workload's manifest, in the Kubernetes API, in the
    Pulumi state and in every `kubectl get -o yaml`.
    """
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    problems = []
    for kind, container in _containers(spec):
        for env in _as_list(container.get("env")):
            if not isinstance(env, Mapping):
                continue
            name = env.get("name")
            value = env.get("value")
            if not isinstance(name, str) or name in ctx.allowed_env_names or not _is_secret_name(name):
                continue
            if value is None or value == "":
                continue
            problems.append(
                f"{kind} {container.get('name', '<unnamed>')!r} sets env {name} as a plain value; use "
                "valueFrom.secretKeyRef (or add the name to this policy's allowedNames if it is not a secret)"
            )
    return problems


# --- Grafana ---------------------------------------------------------------------------------------------


def grafana_values(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Grafana's Helm values inside a kube-prometheus-stack (or a standalone grafana) release."""
    if resource_type != HELM_RELEASE and resource_type not in HELM_CHARTS:
        return None
    chart = props.get("chart")
    if not isinstance(chart, str):
        return None
    # "repo/name", a local chart directory, or a packed archive "charts/<name>-<version>.tgz"
    chart_name = chart.rstrip("/").rsplit("/", 1)[-1]
    if chart_name.endswith((".tgz", ".tar.gz")):
        chart_name = re.sub(r"-v?[0-9][0-9A-Za-z.+-]*\.(tgz|tar\.gz)$", "", chart_name)
    values = props.get("values")
    values = values if isinstance(values, Mapping) else {}
    if chart_name == "kube-prometheus-stack":
        grafana = values.get("grafana")
        grafana = grafana if isinstance(grafana, Mapping) else {}
        if grafana.get("enabled") is False:
            return None
        return grafana
    if chart_name == "grafana":
        return values
    return None


def _anonymous_enabled_in_env(env: Any) -> bool:
    if isinstance(env, Mapping):
        return _truthy(env.get("GF_AUTH_ANONYMOUS_ENABLED"))
    return any(
        isinstance(e, Mapping) and e.get("name") == "GF_AUTH_ANONYMOUS_ENABLED" and _truthy(e.get("value"))
        for e in _as_list(env)
    )


def check_grafana_anonymous(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """Grafana anonymous access stays off (dashboards show model names, traffic and capacity)."""
    grafana = grafana_values(resource_type, props)
    if grafana is not None:
        ini = grafana.get("grafana.ini")
        section = ini.get("auth.anonymous") if isinstance(ini, Mapping) else None
        problems = []
        if isinstance(section, Mapping) and _truthy(section.get("enabled")):
            problems.append("grafana.ini auth.anonymous.enabled is true; set it to false")
        if _anonymous_enabled_in_env(grafana.get("env")):
            problems.append("env GF_AUTH_ANONYMOUS_ENABLED is true; remove it")
        return problems
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    return [
        f"container {c.get('name', '<unnamed>')!r} sets GF_AUTH_ANONYMOUS_ENABLED=true; remove it"
        for _, c in _containers(spec)
        if _anonymous_enabled_in_env(c.get("env"))
    ]


def check_grafana_admin_secret(resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
    """Grafana's admin credentials come from an existing Secret, never a chart value.

    kube-prometheus-stack otherwise sets the well-known default password ``prom-operator``.
    """
    grafana = grafana_values(resource_type, props)
    if grafana is None:
        return []
    problems = []
    password = grafana.get("adminPassword")
    if password is not None and password is not UNKNOWN and password != "":
        problems.append("adminPassword is set in the chart values (clear text in the release); remove it")
    existing = _get(grafana, "admin", "existingSecret")
    if existing is not UNKNOWN and not (isinstance(existing, str) and existing):
        problems.append("admin.existingSecret is not set; point it at the Secret holding admin-user/admin-password")
    return problems
