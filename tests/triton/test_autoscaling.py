"""The KEDA triggers' queries, evaluated by the real Prometheus engine (promtool test rules) on Triton's counters and
the voice pipeline's histogram, and the ScaledObjects built from them."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from infra import node_autoscaler
from infra.monitoring.slos import LatencySlos
from infra.triton import autoscaling
from platform_spec.monitoring import VoiceSlo
from platform_spec.serving import PoolServing, TritonSettings, TritonSettingsError, triton_settings
from platform_spec.settings import load_stack_settings

PROMTOOL = shutil.which("promtool")


def _series(metric: str, service: str, model: str, step: float) -> dict:
    labels = f'namespace="triton",service="{service}",pod="{service}-0",model="{model}",version="1"'
    return {"series": f"{metric}{{{labels}}}", "values": f"0+{step:g}x40"}


def _promtool(tmp_path, rules: list[dict], series: list[dict], checks: list[dict]) -> subprocess.CompletedProcess:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "keda", "rules": rules}]}))
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "15s",
             "tests": [{"interval": "15s", "input_series": series, "promql_expr_test": checks}]}  # fmt: skip
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    return subprocess.run([PROMTOOL, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)


def test_queue_time_trigger_is_request_weighted_across_models_and_zero_when_idle(tmp_path):
    assert PROMTOOL, "promtool (Debian package prometheus) is required"
    rules = [
        {"record": "keda:speech", "expr": autoscaling.queue_ms_query("triton", "triton-speech")},
        {"record": "keda:idle", "expr": autoscaling.queue_ms_query("triton", "triton-idle")},
    ]
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
    checks = [
        {"expr": f"abs(keda:speech - {weighted!r}) < bool 1e-9", "eval_time": "5m",
         "exp_samples": [{"labels": "{}", "value": 1}]},
        {"expr": "keda:idle", "eval_time": "5m", "exp_samples": [{"labels": "keda:idle", "value": 0}]},
    ]  # fmt: skip
    result = _promtool(tmp_path, rules, series, checks)
    assert result.returncode == 0, result.stdout + result.stderr
    # The same data must fail a claim of the unweighted mean: the test above can fail.
    checks[0]["expr"] = "abs(keda:speech - 50.5) < bool 1e-9"
    assert _promtool(tmp_path, rules, series, checks).returncode != 0


def test_time_to_first_audio_trigger_is_the_pools_p95_and_zero_when_idle(tmp_path):
    assert PROMTOOL, "promtool (Debian package prometheus) is required"
    rules = [
        {"record": "keda:speech", "expr": autoscaling.time_to_first_audio_query("speech")},
        {"record": "keda:idle", "expr": autoscaling.time_to_first_audio_query("idle")},
    ]
    bucket = 'voice_turn_time_to_first_audio_seconds_bucket{{pool="{pool}",pod="p",le="{le}"}}'
    # 100 turns per 15 s on two pods of pool speech: 90 % within 0.5 s, all within 1 s -> p95 = 0.75 s.
    series = [
        {"series": bucket.format(pool="speech", le=le).replace('pod="p"', f'pod="{pod}"'), "values": f"0+{n}x40"}
        for pod in ("a", "b")
        for le, n in (("0.5", 45), ("1", 50), ("+Inf", 50))
    ] + [{"series": bucket.format(pool="idle", le=le), "values": "0+0x40"} for le in ("0.5", "1", "+Inf")]
    checks = [
        {
            "expr": "abs(keda:speech - 0.75) < bool 1e-9",
            "eval_time": "5m",
            "exp_samples": [{"labels": "{}", "value": 1}],
        },  # fmt: skip
        {"expr": "keda:idle", "eval_time": "5m", "exp_samples": [{"labels": "keda:idle", "value": 0}]},
    ]
    result = _promtool(tmp_path, rules, series, checks)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scaled_objects_follow_the_stack_settings_and_slos():
    settings = load_stack_settings("prod")
    triton = triton_settings(settings)
    speech = next(p for p in settings.gpu_pools if p.role == "speech")
    serving = triton.pool(speech.name)
    voice = VoiceSlo(time_to_first_audio_seconds=0.6)
    triggers = autoscaling.pool_triggers(speech, serving, triton, ["asr", "pipeline", "tts"], LatencySlos(), voice)
    obj = autoscaling.scaled_object_manifest(speech, serving, triton, triggers)
    thresholds = {t["name"]: t["metadata"]["threshold"] for t in obj["spec"]["triggers"]}
    assert thresholds == {"queue-time": "20", "time-to-first-audio": "0.6"}
    behavior = obj["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == autoscaling.SCALE_DOWN_STABILISATION_S
    fractional = TritonSettings.defaults("dev", settings.gpu_pools, pools={"speech": {"target_queue_ms": 12.5}})
    triggers = autoscaling.pool_triggers(speech, fractional.pool("speech"), fractional, ["asr"], LatencySlos(), voice)
    assert [t["metadata"]["threshold"] for t in triggers] == ["12.5"]


def test_a_dev_llm_pool_may_scale_to_zero_and_wakes_on_turns():
    dev = load_stack_settings("dev")
    triton = triton_settings(dev, {"pools": {"llm": {"min_replicas": 0}}})
    llm = next(p for p in dev.gpu_pools if p.role == "llm")
    triggers = autoscaling.pool_triggers(llm, triton.pool("llm"), triton, ["llm"], LatencySlos(), VoiceSlo())
    obj = autoscaling.scaled_object_manifest(llm, triton.pool("llm"), triton, triggers)
    assert obj["spec"]["minReplicaCount"] == 0
    wake = obj["spec"]["triggers"][-1]
    assert wake["name"] == "wake-on-turns" and wake["metadata"]["threshold"] == autoscaling.WAKE_THRESHOLD
    for stack, pool in (("dev", "speech"), ("prod", "llm")):
        with pytest.raises(TritonSettingsError, match="only a dev LLM pool may scale to zero"):
            triton_settings(load_stack_settings(stack), {"pools": {pool: {"min_replicas": 0}}})


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
