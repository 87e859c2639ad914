"""Render the vendored charts with the real Helm engine (helm-python-sdk: Helm's Go SDK in a wheel) the way a
cluster of the platform's Kubernetes version would, and find values keys a chart never reads.

``render`` goes through the SDK's ``helm_render`` call because the public ``Chart.render`` cannot set the
cluster's capabilities (it renders for Helm's default Kubernetes version, whose API list lacks
``apiregistration.k8s.io/v1`` and every CRD group). A fresh ``Chart`` is loaded per render: rendering drops
the subcharts the values disable from the loaded object.
"""

from __future__ import annotations

import functools
import json
import re
import tarfile
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import yaml
from helm_python import Chart, _native

from platform_spec import versions
from platform_spec.settings import REPO_ROOT

KUBE_VERSION = "v1.34.1"
# What the cluster serves beyond Helm's defaults: the aggregation API and the CRD groups the charts use.
API_VERSIONS = ["apiregistration.k8s.io/v1", "monitoring.coreos.com/v1", "monitoring.coreos.com/v1alpha1"]

RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
# The charts the program installs, by the archive path a Release names.
PINS = {p["archive"]: p for p in (versions.NVIDIA_DEVICE_PLUGIN_CHART, versions.DCGM_EXPORTER_CHART,
                                  versions.KUBE_PROMETHEUS_STACK_CHART, versions.KEDA_CHART,
                                  versions.CLUSTER_AUTOSCALER_CHART)}  # fmt: skip

yaml.SafeLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def render(pin: Mapping[str, str], values: Mapping[str, Any], release: str, namespace: str) -> list[dict]:
    chart = Chart.load(REPO_ROOT / pin["archive"])
    options = {"name": release, "namespace": namespace, "is_install": True, "kube_version": KUBE_VERSION,
               "api_versions": API_VERSIONS}  # fmt: skip
    out = json.loads(_native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(options)))
    return [doc for path, text in sorted(out.items()) if not path.endswith("NOTES.txt") for doc in
            yaml.safe_load_all(text) if doc]  # fmt: skip


def render_releases(run: Any) -> dict[str, tuple[Any, list[dict]]]:
    """Release name -> (its registration, the objects Helm renders from exactly the values the program passed)."""
    return {
        r.inputs["name"]: (
            r,
            render(PINS[r.inputs["chart"]], r.inputs.get("values") or {}, r.inputs["name"], r.inputs["namespace"]),
        )  # fmt: skip
        for r in run.of_type(RELEASE_TYPE)
    }


def crds(pin: Mapping[str, str]) -> list[dict]:
    loaded = Chart.load(REPO_ROOT / pin["archive"]).crds
    return [doc for crd in loaded for doc in yaml.safe_load_all(crd["data"]) if doc]


@functools.cache
def crd_schemas() -> dict[tuple[str, str, str], dict]:
    """(group, version, kind) -> the strict openAPIV3Schema, from the CRDs the charts ship: kube-prometheus-stack's
    in its crds/ folder, KEDA's as templates of its chart."""
    keda = [o for o in render(versions.KEDA_CHART, {}, "keda", "keda") if o["kind"] == "CustomResourceDefinition"]
    schemas = {}
    for crd in crds(versions.KUBE_PROMETHEUS_STACK_CHART) + keda:
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = strict(python_patterns(version["schema"]["openAPIV3Schema"]))
            schemas[(spec["group"], version["name"], spec["names"]["kind"])] = schema
    return schemas


def validate_custom_resource(obj: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` where the API server would refuse ``obj``; AssertionError when no
    chart ships its CRD."""
    group, _, version = obj["apiVersion"].rpartition("/")
    schema = crd_schemas().get((group, version, obj["kind"]))
    assert schema is not None, f"{obj['apiVersion']} {obj['kind']} has neither a Kubernetes schema nor a CRD here"
    jsonschema.Draft7Validator(schema).validate(obj)


def strict(schema: Any) -> Any:
    """A CRD's schema that refuses unknown fields, as the API server does under strict field validation (the
    default of ``kubectl apply`` since 1.27): an object schema with ``properties`` and neither
    ``additionalProperties`` nor ``x-kubernetes-preserve-unknown-fields`` gets ``additionalProperties: false``.
    Without this a misspelt key would pass here and be pruned silently by the API server."""
    if isinstance(schema, Mapping):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def python_patterns(schema: Any) -> Any:
    """A CRD's OpenAPI schema with Go regexes made valid for Python: Go accepts an inline flag anywhere
    (``^(?i)abc$``), Python only at the start (``(?i)^abc$``)."""
    if isinstance(schema, Mapping):
        out = {k: python_patterns(v) for k, v in schema.items()}
        pattern = out.get("pattern")
        if isinstance(pattern, str) and "(?i)" in pattern and not pattern.startswith("(?i)"):
            out["pattern"] = "(?i)" + pattern.replace("(?i)", "")
        return out
    if isinstance(schema, list):
        return [python_patterns(v) for v in schema]
    return schema


@functools.cache
def _archive(archive: str) -> dict[str, str]:
    with tarfile.open(REPO_ROOT / archive) as tar:
        return {
            m.name: tar.extractfile(m).read().decode("utf-8", "replace")
            for m in tar.getmembers()
            if m.isfile() and (m.name.endswith(("values.yaml", ".tpl", ".yaml", ".json")) or "/templates/" in m.name)
        }


def _chart_roots(files: Mapping[str, str]) -> dict[str, str]:
    """Chart directory -> its values path prefix: the top chart is "", a subchart is its name under charts/."""
    roots = {}
    for name in files:
        if name.endswith("/Chart.yaml"):
            root = name[: -len("Chart.yaml")]
            parts = root.strip("/").split("/")
            roots[root] = "" if len(parts) == 1 else parts[-1]
    return roots


def defaults_and_templates(pin: Mapping[str, str]) -> tuple[dict, dict[str, str]]:
    """The chart's default values with each subchart's under its name, and the template text per values prefix."""
    files = _archive(pin["archive"])
    defaults: dict[str, Any] = {}
    templates: dict[str, str] = {}
    for root, prefix in sorted(_chart_roots(files).items(), key=lambda item: item[0].count("/")):
        own = yaml.safe_load(files.get(f"{root}values.yaml", "")) or {}
        target = defaults if not prefix else defaults.setdefault(prefix, {})
        _merge(target, own)
        text = "\n".join(t for n, t in files.items() if n.startswith(f"{root}templates/"))
        templates[prefix] = templates.get(prefix, "") + text
    return defaults, templates


def _merge(into: dict, other: Mapping) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into.setdefault(key, value)


def ignored_keys(values: Mapping[str, Any], pin: Mapping[str, str]) -> list[str]:
    """Values paths the chart neither declares in a values.yaml nor reads in a template: Helm ignores them
    silently, so a renamed key at a chart bump would change nothing and nobody would know."""
    defaults, templates = defaults_and_templates(pin)
    subcharts = {p for p in templates if p}
    return sorted(_walk(values, defaults, "", templates, subcharts))


def _walk(values: Mapping, defaults: Any, path: str, templates: dict[str, str], subcharts: set[str]) -> Iterator[str]:
    if not isinstance(defaults, Mapping) or not defaults:
        return  # a free-form map (labels, extraArgs, ...) or a scalar default: any key goes
    for key, value in values.items():
        here = f"{path}.{key}" if path else key
        if key == "global":
            continue
        head, _, tail = here.partition(".")
        subchart = head if head in subcharts else ""
        scope = templates.get(subchart, "")
        relative = re.escape(tail if subchart else here)
        if key not in defaults:
            if not re.search(rf"\.{re.escape(key)}\b", scope):
                yield here
            continue
        # A map a template ranges over or dumps whole (extraArgs, grafana.ini, `with .Values.x` + `toYaml .`)
        # takes any key.
        reference = rf"(\.Values\.{relative}(?![\w.-])|index \.Values \"{relative}\")"
        free_form = re.search(rf"(range|toYaml)[^}}]*{reference}", scope) or re.search(
            rf"with {reference}\s*-?}}}}(?:(?!{{{{-?\s*end).)*?toYaml \.\s*\|", scope, re.DOTALL
        )
        if isinstance(value, Mapping) and not free_form:
            yield from _walk(value, defaults[key], here, templates, subcharts)
