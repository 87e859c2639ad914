"""Every Kubernetes object the program declares itself (outside Helm) passes the API schema of
the pinned Kubernetes version, in strict mode (unknown fields are errors)."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from platform_spec import versions
from tests.helm_render import validate_custom_resource
from tests.monitoring.crd_shapes import prometheus_rule_errors, service_monitor_errors
from tests.pulumi_harness import kubernetes_manifest, kubernetes_objects

# kubernetes-validate ships no schemas for custom resources: the prometheus-operator kinds are
# checked structurally against the fields their CRDs require, KEDA's against its CRD; any other custom kind fails.
CUSTOM_RESOURCE_CHECKS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): service_monitor_errors,
    ("monitoring.coreos.com/v1", "PrometheusRule"): prometheus_rule_errors,
}


def schema_version(pinned: str) -> str:
    """The closest Kubernetes version >= ``pinned`` that kubernetes-validate ships schemas for."""
    wanted = tuple(int(p) for p in pinned.split(".")[:2])
    shipped = sorted(
        tuple(int(p) for p in v.split(".")[:2])
        for v in set(kubernetes_validate.utils.all_versions())  # e.g. "1.34.0"
    )
    for candidate in shipped:
        if candidate >= wanted:
            return f"{candidate[0]}.{candidate[1]}.0"
    raise AssertionError(f"kubernetes-validate has no schema for Kubernetes >= {pinned}; shipped: {shipped}")


SCHEMA_VERSION = schema_version(versions.KUBERNETES_VERSION)


def test_schema_version_is_the_pinned_minor():
    # kubernetes-validate 1.37 ships 1.34 schemas: validation is for exactly the version we run.
    assert f"{versions.KUBERNETES_VERSION}.0" == SCHEMA_VERSION


def test_every_kubernetes_object_passes_the_api_schema(stack_run):
    objects = kubernetes_objects(stack_run)
    assert objects, "no Kubernetes objects declared outside Helm"
    for registration in objects:
        manifest = kubernetes_manifest(registration)
        assert manifest["apiVersion"] and manifest["kind"]
        custom_check = CUSTOM_RESOURCE_CHECKS.get((manifest["apiVersion"], manifest["kind"]))
        if custom_check is not None:
            assert custom_check(manifest) == [], f"{registration.type} {registration.name}"
            continue
        if manifest["apiVersion"].startswith("keda.sh/"):
            validate_custom_resource(manifest)  # KEDA's CRD, strict (tests/helm_render.py)
            continue
        try:
            kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{registration.type} {registration.name}: {exc.message} at {list(exc.path)}")


def test_the_schema_check_rejects_a_broken_object(dev_stack):
    # Guard against a check that cannot fail: the same StorageClass with a wrong-typed field fails.
    (storage_class,) = [r for r in kubernetes_objects(dev_stack) if r.type.endswith(":StorageClass")]
    broken = copy.deepcopy(kubernetes_manifest(storage_class))
    broken["allowVolumeExpansion"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, SCHEMA_VERSION, strict=True)
    unknown_field = copy.deepcopy(kubernetes_manifest(storage_class))
    unknown_field["volumeBindingModes"] = "WaitForFirstConsumer"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown_field, SCHEMA_VERSION, strict=True)
