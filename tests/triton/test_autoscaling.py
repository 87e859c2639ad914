"""The HPA's queue-time metric: prometheus-adapter's query, expanded as the adapter expands it for
the Triton Service, evaluated by the real Prometheus engine (promtool test rules) on Triton's counters."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from infra import node_autoscaler
from infra.triton import autoscaling
from platform_spec.serving import PoolServing, TritonSettings, TritonSettingsError, triton_settings
from platform_spec.settings import load_stack_settings

PROMTOOL = shutil.which("promtool")


def _series(metric: str, service: str, model: str, step: float) -> dict:
    labels = f'namespace="triton",service="{service}",pod="{service}-0",model="{model}",version="1"'
    return {"series": f"{metric}{{{labels}}}", "values": f"0+{step:g}x40"}


def test_adapter_metric_is_request_weighted_across_models(tmp_path):
    assert PROMTOOL, "promtool (Debian package prometheus) is required"
    rule = autoscaling.adapter_rule()
    assert re.fullmatch(rule["name"]["matches"], "nv_inference_queue_duration_us")
    assert rule["resources"]["overrides"]["service"] == {"resource": "service"}

    def query(service: str) -> str:
        return autoscaling.expand_adapter_query(
            rule["metricsQuery"], {"namespace": "triton", "service": service}, "service"
        )

    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": [
        {"record": "adapter:speech", "expr": query("triton-speech")},
        {"record": "adapter:idle", "expr": query("triton-idle")},
    ]}]}))  # fmt: skip
    # Every 15 s: `embed` serves 1500 requests (100/s) that wait 1 ms each, `asr` 15 requests (1/s)
    # that wait 100 ms each. Requests wait (1500*1 + 15*100) / 1515 = 1.980 ms on average; the mean of
    # the per-model means would claim 50.5 ms. Another Service's series must not leak in.
    series = [
        _series("nv_inference_request_success", "triton-speech", "embed", 1500),
        _series("nv_inference_queue_duration_us", "triton-speech", "embed", 1500 * 1_000),
        _series("nv_inference_request_success", "triton-speech", "asr", 15),
        _series("nv_inference_queue_duration_us", "triton-speech", "asr", 15 * 100_000),
        _series("nv_inference_request_success", "triton-llm", "llm_chat", 10),
        _series("nv_inference_queue_duration_us", "triton-llm", "llm_chat", 10 * 5_000_000),
        _series("nv_inference_request_success", "triton-idle", "vad", 0),
        _series("nv_inference_queue_duration_us", "triton-idle", "vad", 0),
    ]
    weighted = (1500 * 1 + 15 * 100) / 1515
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "15s", "tests": [{
        "interval": "15s",
        "input_series": series,
        "promql_expr_test": [
            {"expr": f"abs(adapter:speech - {weighted!r}) < bool 1e-9", "eval_time": "5m",
             "exp_samples": [{"labels": '{service="triton-speech"}', "value": 1}]},
            {"expr": "adapter:idle", "eval_time": "5m",
             "exp_samples": [{"labels": 'adapter:idle{service="triton-idle"}', "value": 0}]},
        ],
    }]}  # fmt: skip
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run([PROMTOOL, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

    # The same data must fail a claim of the unweighted mean: the test above can fail.
    tests["tests"][0]["promql_expr_test"][0]["expr"] = "abs(adapter:speech - 50.5) < bool 1e-9"
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    assert subprocess.run([PROMTOOL, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True).returncode != 0


def test_hpa_targets_and_behaviour():
    settings = load_stack_settings("prod")
    triton = triton_settings(settings)
    speech = next(p for p in settings.gpu_pools if p.role == "speech")
    hpa = autoscaling.hpa_manifest(speech, triton.pool(speech.name), triton)
    assert hpa["spec"]["metrics"][0]["object"]["target"] == {"type": "Value", "value": "20"}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    fractional = TritonSettings.defaults("dev", settings.gpu_pools, pools={"speech": {"target_queue_ms": 12.5}})
    hpa = autoscaling.hpa_manifest(speech, fractional.pool("speech"), fractional)
    assert hpa["spec"]["metrics"][0]["object"]["target"]["value"] == "12500m"


def test_cluster_autoscaler_may_scale_only_this_clusters_groups():
    import json

    policy = json.loads(node_autoscaler.cluster_autoscaler_policy("triton-platform-prod"))
    scale = next(s for s in policy["Statement"] if s["Sid"] == "ScaleOwnGroupsOnly")
    assert scale["Condition"] == {
        "StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/triton-platform-prod": "owned"}
    }
    values = node_autoscaler.cluster_autoscaler_values("triton-platform-prod", "us-east-1")
    assert values["extraArgs"]["skip-nodes-with-local-storage"] is False  # Triton's emptyDir must not pin nodes


def test_settings_defaults_per_stack_and_clear_errors():
    dev, prod = load_stack_settings("dev"), load_stack_settings("prod")
    assert triton_settings(dev).pool("llm").max_replicas == 2
    assert triton_settings(prod).pool("speech").min_replicas == 3
    assert triton_settings(prod, {"internal_nlb": True}).nlb_source_cidrs == ("10.30.0.0/16",)
    cases = [
        ({"pools": {"speech": {"min_replicas": 3, "max_replicas": 2}}},
         r"pools\.speech\.maxReplicas = 2: must be >= minReplicas 3"),
        ({"pools": {"gpu-x": {"max_replicas": 2}}}, r"no such GPU pool; pools are \['llm', 'speech'\]"),
        ({"pools": {"llm": {"target_queue_ms": 0}}}, r"targetQueueMs = 0"),
        ({"pools": {"llm": {"memory": "lots"}}}, r"pools\.llm\.memory = 'lots': use a Kubernetes quantity"),
        ({"internal_nlb": True, "nlb_source_cidrs": ()}, r"internalNlb is on: list the CIDRs"),
        ({"namespace": "Triton!"}, r"namespace = 'Triton!'"),
        ({"max_surge": 9}, r"maxSurge = 9"),
        ({"poll": True}, r"unknown keys"),
    ]  # fmt: skip
    for overrides, message in cases:
        with pytest.raises(TritonSettingsError, match=message):
            triton_settings(dev, overrides)
    with pytest.raises(TritonSettingsError, match="GPU pool 'other' has no serving settings"):
        TritonSettings(pools={"llm": PoolServing(1, 1, 10, cpu="1", memory="1Gi", ephemeral_storage="1Gi")}).pool(
            "other"
        )


def test_stack_config_object_maps_onto_triton_settings():
    from platform_spec.serving import triton_overrides

    raw = {
        "internalNlb": True,
        "nlbSourceCidrs": ["10.0.0.0/8"],
        "pools": {"speech": {"maxReplicas": 12, "targetQueueMs": 15}},
    }
    overrides = triton_overrides(raw)
    assert overrides == {"internal_nlb": True, "nlb_source_cidrs": ("10.0.0.0/8",),
                         "pools": {"speech": {"max_replicas": 12, "target_queue_ms": 15}}}  # fmt: skip
    settings = triton_settings(load_stack_settings("prod"), overrides)
    assert settings.pool("speech").max_replicas == 12 and settings.internal_nlb
    with pytest.raises(
        TritonSettingsError, match=r"triton-platform:triton\.internalNLB: unknown key; allowed \[.*'internalNlb'"
    ):
        triton_overrides({"internalNLB": True})
    with pytest.raises(TritonSettingsError, match=r"pools\.speech: unknown keys \['maxReplica'\]"):
        triton_overrides({"pools": {"speech": {"maxReplica": 3}}})
