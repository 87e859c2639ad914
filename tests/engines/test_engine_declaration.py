"""Compatibility gate, source lock, catalog planning, and Engine declaration under Pulumi's mocks."""

from __future__ import annotations

import dataclasses
import json

import pulumi
import pytest

from engines.builders import spec_for
from engines.catalog_engines import LLM_CALIBRATION_URI, PlanError, plan_engines
from engines.compatibility import EngineCompatibilityError, check_compatible, compatibility_problems
from engines.source_lock import SourceLock, SourceLockError, load_lock
from engines.source_lock import main as lock_main
from engines.spec import BuilderSettings, InputProfile, LlmSettings, SourceRef, Target, content_key
from infra.engine_declarations import declare_engines
from model_repo import catalog
from platform_spec import versions
from platform_spec.digests import file_sha256
from platform_spec.settings import ModelSelection, load_stack_settings
from tests.engines.conftest import cpu_spec

SHA = "9" * 64
PROFILE = (InputProfile("x", (1, 16), (4, 16), (16, 16)),)


def trt(sku="l4", **settings):
    settings.setdefault("profiles", PROFILE)
    source = SourceRef("/m.onnx", SHA)
    return spec_for("asr_encoder", "tensorrt", source, Target.for_gpu(sku), BuilderSettings(**settings))


def test_gate_accepts_the_matching_pool_and_names_every_mismatch(mlp_onnx):
    assert compatibility_problems(trt("l4"), "speech", "l4") == []
    check_compatible(trt("h100"), "llm", "h100")

    (problem,) = compatibility_problems(trt("l4"), "speech", "l4", serving_version="10.14.1")
    assert f"built for TensorRT {versions.TENSORRT_VERSION} but the serving image runs TensorRT 10.14.1" in problem

    problems = compatibility_problems(trt("h100", precision="fp16"), "speech", "a10g")
    assert any("compute capability 9.0 (h100) but pool 'speech' has a10g (8.6)" in p for p in problems)

    (problem,) = compatibility_problems(trt("l4"), "speech", "l40s")
    assert "same compute capability 8.9" in problem
    assert compatibility_problems(trt("l4", hardware_compatibility="same_compute_capability"), "speech", "l40s") == []
    assert compatibility_problems(trt("l4", hardware_compatibility="ampere_plus"), "llm", "h100") == []

    # Version-compatible plans load on a later TensorRT of the same major, never an earlier one.
    assert compatibility_problems(trt("l4", version_compatible=True), "speech", "l4", "10.14.1") == []
    assert compatibility_problems(trt("l4", version_compatible=True), "speech", "l4", "10.12.0")

    fp8 = dataclasses.replace(trt("h100", precision="fp8", strongly_typed=True))
    assert any("fp8 needs FP8 tensor cores; a10g" in p for p in compatibility_problems(fp8, "speech", "a10g"))
    assert "CPU (ONNX Runtime) artifact" in compatibility_problems(cpu_spec(mlp_onnx), "speech", "l4")[0]

    llm = spec_for(
        "llm_chat",
        "tensorrt_llm",
        SourceRef("store://s/", SHA, "hf_checkpoint"),
        Target.for_gpu("h100", "tensorrt_llm"),
        BuilderSettings(precision="bf16", llm=LlmSettings()),
    )
    assert compatibility_problems(llm, "llm", "h100") == []
    (problem,) = compatibility_problems(llm, "llm", "h100", "1.2.0")
    assert "TensorRT-LLM 1.1.0 but the serving image runs 1.2.0" in problem

    with pytest.raises(EngineCompatibilityError, match="engine/pool mismatch"):
        check_compatible(trt("l4"), "speech", "t4")


def test_source_lock_round_trip_and_clear_errors(tmp_path, mlp_onnx):
    lock_path = tmp_path / "sources.lock.json"
    assert load_lock(lock_path).entries == {}
    with pytest.raises(SourceLockError, match=r"engines.source_lock record export://asr/encoder.onnx"):
        load_lock(lock_path).resolve("export://asr/encoder.onnx", "onnx", "engine 'asr_encoder'")

    assert lock_main(["record", "export://asr/encoder.onnx", mlp_onnx.as_uri(), "--lock", str(lock_path)]) == 0
    ref = load_lock(lock_path).resolve("export://asr/encoder.onnx", "onnx", "x")
    assert ref == SourceRef(mlp_onnx.as_uri(), file_sha256(mlp_onnx), "onnx")

    store_root = tmp_path / "store"
    (store_root / "sources" / "ckpt").mkdir(parents=True)
    (store_root / "sources" / "ckpt" / "config.json").write_text("{}")
    args = ["record", "hf://org/model", "store://sources/ckpt/", "--store-uri", store_root.as_uri()]
    assert lock_main([*args, "--lock", str(lock_path)]) == 0
    assert load_lock(lock_path).entries["hf://org/model"].uri == "store://sources/ckpt/"
    assert lock_main(["record", "hf://x/y", str(tmp_path / "missing"), "--lock", str(lock_path)]) == 1

    lock_path.write_text("{not json")
    with pytest.raises(SourceLockError, match="not valid JSON"):
        load_lock(lock_path)
    lock_path.write_text(json.dumps({"schema": 1, "sources": {"hf://a/b": {"uri": "store://x"}}}))
    with pytest.raises(SourceLockError, match="needs 'uri' and a 64-hex 'sha256'"):
        load_lock(lock_path)


def full_lock(models) -> SourceLock:
    """Every source the selected models need, pinned to distinct (test) digests."""
    uris = {LLM_CALIBRATION_URI}
    for m in models:
        uris.update(e.source.uri for e in m.engines)
        if m.role == "llm":
            uris.add(m.source.uri)
        if m.lora is not None:
            uris.add(m.lora.adapter.uri)
    return SourceLock({u: SourceRef(f"store://pinned/{i}", f"{i:064x}", "locked") for i, u in enumerate(sorted(uris))})


def test_plan_covers_every_enabled_engine_on_every_pool_serving_it():
    settings = load_stack_settings("prod")
    models = catalog.select(settings.models)
    plans = plan_engines(models, settings.gpu_pools, full_lock(models))
    assert sorted(p.resource_name for p in plans) == [
        "asr_decoder_joint-speech",
        "asr_encoder-speech",
        "embed_encoder-speech",
        "llm_chat-llm",
        "llm_support-llm",
        "tts_fastpitch-speech",
        "tts_hifigan-speech",
    ]
    by_name = {p.resource_name: p.spec for p in plans}
    assert by_name["asr_encoder-speech"].target.gpu_sku == "l40s" and by_name["llm_chat-llm"].target.gpu_sku == "h100"
    assert by_name["llm_chat-llm"].settings.precision == "fp8"
    assert by_name["llm_chat-llm"].settings.calibration.method == "modelopt"
    encoder = {p.name: p for p in by_name["asr_encoder-speech"].settings.profiles}
    # 100 ms .. 30 s of 10 ms feature frames: exactly the utterances the ASR model accepts.
    assert encoder["audio_signal"].min == (1, 128, 11) and encoder["audio_signal"].max == (8, 128, 3001)
    assert encoder["length"].opt == (8,)

    # Two speech pools: every speech engine once per pool.
    second = settings.gpu_pools[1].model_copy(
        update={"name": "speech-b", "gpu_sku": "l4", "instance_types": ["g6.xlarge"]}
    )
    plans = plan_engines(models, [*settings.gpu_pools, second], full_lock(models))
    assert sum(p.pool == "speech-b" for p in plans) == 5

    # LoRA variants: the support model becomes an adapter bound to the base checkpoint's key.
    plans = {p.resource_name: p for p in plan_engines(models, settings.gpu_pools, full_lock(models), "lora")}
    adapter = plans["llm_support_lora-llm"].spec
    assert adapter.builder == "lora" and adapter.settings.llm.base_model_key == plans["llm_chat-llm"].key
    assert plans["llm_chat-llm"].spec.settings.llm.enable_lora is True


def test_plan_failures_name_the_model_and_fix():
    settings = load_stack_settings("dev")
    models = catalog.select(settings.models)
    with pytest.raises(PlanError, match="runs on the 'llm' pool, but the stack has no such GPU pool"):
        plan_engines(models, [p for p in settings.gpu_pools if p.role == "speech"], full_lock(models))
    with pytest.raises(SourceLockError) as err:
        plan_engines(models, settings.gpu_pools, SourceLock({}))
    assert "checkpoint of 'llm_chat'" in str(err.value) and "engine 'asr_encoder' of 'asr'" in str(err.value)
    assert "fp8 calibration of 'llm_chat'" in str(err.value)
    disabled = ModelSelection(enabled=False)
    only_support = catalog.select({"llm_chat": disabled, "voice_pipeline": disabled})
    with pytest.raises(PlanError, match="LoRA variant of 'llm_chat', which is not enabled"):
        plan_engines(only_support, settings.gpu_pools, full_lock(models), "lora")


class Recorder(pulumi.runtime.Mocks):
    def __init__(self):
        self.registered: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args):
        self.registered.append(args)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args):
        return {}


@pytest.fixture
def recorder():
    rec = Recorder()
    pulumi.runtime.set_mocks(rec, preview=False)
    return rec


def _declare(selections, name_prefix="engine"):
    settings = load_stack_settings("dev")
    models = catalog.select(selections)
    declared = declare_engines(
        plan_engines(models, settings.gpu_pools, full_lock(catalog.select(None))),
        "s3://models-bucket/",
        kubeconfig="apiVersion: v1\nkind: Config\n",
        runner_settings={"namespace": "engine-builds", "aws_region": settings.region},
        name_prefix=name_prefix,
    )
    return declared


def test_declared_engines_carry_their_keys_and_one_precision_change_moves_one_key(recorder):
    settings = load_stack_settings("dev")
    results = {}

    @pulumi.runtime.test
    def declare():
        results["base"] = _declare(settings.models)
        fp32_embed = {**settings.models, "embed": ModelSelection(precision="fp32")}
        results["changed"] = _declare(fp32_embed, name_prefix="changed")
        return results["base"][("embed_encoder", "speech")].resource.key

    declare()  # returns once every registration has completed
    declared, changed = results["base"], results["changed"]
    assert set(declared) == {
        ("asr_encoder", "speech"),
        ("asr_decoder_joint", "speech"),
        ("embed_encoder", "speech"),
        ("tts_fastpitch", "speech"),
        ("tts_hifigan", "speech"),
        ("llm_chat", "llm"),
        ("llm_support", "llm"),
    }
    moved = {k for k in declared if declared[k].plan.key != changed[k].plan.key}
    assert moved == {("embed_encoder", "speech")}

    engines = [r for r in recorder.registered if r.typ == "pulumi-python:dynamic/engines:Engine"]
    assert len(engines) == 14
    first = {r.name: r.inputs for r in engines if r.name.startswith("engine-")}
    assert len(first) == 7
    embed = first["engine-embed_encoder-speech"]
    assert embed["key"] == declared[("embed_encoder", "speech")].plan.key
    assert embed["key"] == content_key(declared[("embed_encoder", "speech")].plan.spec)
    assert embed["runner"] == {
        "kind": "kubernetes",
        "pool": "speech",
        "namespace": "engine-builds",
        "aws_region": "us-west-2",
        # what a TensorRT build needs (engines/build_resources.py), requested by the Job
        "cpu": "2000m",
        "memory": "12288Mi",
        "scratch": "30Gi",
    }
    assert first["engine-llm_chat-llm"]["runner"]["memory"] == "49152Mi"  # the 8B FP8 quantization
    assert embed["store"] == "s3://models-bucket/" and embed["delete_artifacts"] is False
    assert embed["gpu_sku"] == "l4" and embed["compute_capability"] == "8.9" and embed["precision"] == "fp16"
    assert first["engine-llm_chat-llm"]["runner"]["pool"] == "llm"
