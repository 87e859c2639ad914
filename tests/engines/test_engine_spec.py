"""EngineSpec: deterministic content key, what it covers and ignores, validation messages, diffs."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from pulumi.runtime import rpc

from engines.builders import CODE_VERSIONS, spec_for
from engines.spec import (
    BuilderSettings,
    Calibration,
    EngineSpec,
    InputProfile,
    LlmSettings,
    SourceRef,
    SpecError,
    Target,
    content_key,
    spec_differences,
)
from platform_spec import versions

SHA = "a" * 64
PROFILE = (InputProfile("x", (1, 16), (4, 16), (16, 16)),)
CALIBRATOR = Calibration("calibrator", SourceRef("/c.npz", SHA))
MODELOPT = Calibration("modelopt", SourceRef("/c.npz", SHA))


def trt_spec(**settings) -> EngineSpec:
    settings.setdefault("profiles", PROFILE)
    return spec_for(
        "asr_encoder",
        "tensorrt",
        SourceRef("store://exports/asr/encoder.onnx", SHA, "onnx"),
        Target.for_gpu("h100"),
        BuilderSettings(**settings),
    )


def test_gpu_target_takes_facts_from_infra():
    t = Target.for_gpu("l40s")
    assert (t.compute_capability, t.runtime_version, t.serving_image) == (
        "8.9",
        versions.TENSORRT_VERSION,
        versions.TRITON_IMAGE,
    )
    assert Target.for_gpu("h100", "tensorrt_llm").runtime_version == versions.TENSORRT_LLM_VERSION
    with pytest.raises(SpecError, match="'b200' is not a known GPU SKU"):
        Target.for_gpu("b200")


def test_key_is_deterministic_and_survives_pulumis_round_trip():
    spec = trt_spec(precision="fp16", workspace_mib=2048)
    assert content_key(spec) == content_key(trt_spec(precision="fp16", workspace_mib=2048))
    # Through Pulumi's wire format numbers come back as floats; the key must not change.
    struct = asyncio.run(rpc.serialize_properties(spec.to_inputs(), {}))
    seen = rpc.deserialize_properties(struct)
    assert isinstance(seen["workspace_mib"], float)
    assert content_key(EngineSpec.from_inputs(seen)) == content_key(spec)
    assert EngineSpec.from_inputs(seen) == spec


@pytest.mark.parametrize(
    "change",
    [
        dict(precision="bf16"),
        dict(workspace_mib=1024),
        dict(optimization_level=5),
        dict(timing_cache=False),
        dict(version_compatible=True),
        dict(hardware_compatibility="ampere_plus"),
        dict(profiles=(InputProfile("x", (1, 16), (8, 16), (16, 16)),)),
    ],
)
def test_every_builder_setting_is_in_the_key(change):
    assert content_key(trt_spec(**change)) != content_key(trt_spec())


def test_target_source_and_code_version_are_in_the_key_uri_and_name_are_not():
    base = trt_spec()
    assert content_key(dataclasses.replace(base, target=Target.for_gpu("l40s"))) != content_key(base)
    assert content_key(dataclasses.replace(base, target=Target.for_gpu("h200"))) != content_key(base)
    newer_trt = dataclasses.replace(base.target, runtime_version="10.14.1")
    assert content_key(dataclasses.replace(base, target=newer_trt)) != content_key(base)
    assert content_key(dataclasses.replace(base, builder_code_version="trt-2")) != content_key(base)
    assert content_key(dataclasses.replace(base, source=SourceRef(base.source.uri, "b" * 64))) != content_key(base)
    moved = dataclasses.replace(base, source=SourceRef("s3://elsewhere/encoder.onnx", SHA), model="renamed")
    assert content_key(moved) == content_key(base)
    new_image = dataclasses.replace(base.target, serving_image="nvcr.io/nvidia/tritonserver:25.10-py3-patched")
    assert content_key(dataclasses.replace(base, target=new_image)) == content_key(base)


def test_validation_names_input_value_and_fix():
    inputs = trt_spec().to_inputs()
    with pytest.raises(SpecError) as err:
        EngineSpec.from_inputs(
            {**inputs, "precision": "fp4", "source_sha256": "xyz", "optimization_level": 9, "gpu_sku": "t4"}
        )
    problems = dict(err.value.problems)
    assert "'fp4' is not allowed; use one of ['fp32', 'fp16', 'bf16', 'fp8', 'int8']" in problems["precision"]
    assert "64 lowercase hex" in problems["source_sha256"]
    assert "[0, 5]" in problems["optimization_level"]

    with pytest.raises(SpecError) as err:
        EngineSpec.from_inputs({**inputs, "gpu_sku": "t4"})
    assert "does not match t4 (7.5" in dict(err.value.problems)["compute_capability"]


@pytest.mark.parametrize(
    ("sku", "settings", "prop", "text"),
    [
        ("t4", dict(precision="fp8", strongly_typed=True), "precision", "FP8 tensor cores"),
        ("t4", dict(precision="bf16"), "precision", "compute capability >= 8.0"),
        ("t4", dict(hardware_compatibility="ampere_plus"), "hardware_compatibility", "Ampere or newer"),
        ("h100", dict(precision="int8"), "calibration", "needs scales"),
        ("h100", dict(precision="fp8", calibration=CALIBRATOR), "calibration", "only makes int8"),
        (
            "h100",
            dict(precision="int8", strongly_typed=True, calibration=CALIBRATOR),
            "strongly_typed",
            "cannot run",
        ),
        ("h100", dict(precision="int8", calibration=Calibration("modelopt")), "calibration", "needs data"),
        ("h100", dict(precision="fp16", calibration=MODELOPT), "calibration", "needs no calibration"),
    ],
)
def test_cross_field_rules(sku, settings, prop, text):
    spec = dataclasses.replace(trt_spec(**settings), target=Target.for_gpu(sku))
    with pytest.raises(SpecError) as err:
        EngineSpec.from_inputs(spec.to_inputs())
    assert text in dict(err.value.problems)[prop]


def test_builder_must_match_source_and_runtime():
    spec = trt_spec()
    with pytest.raises(SpecError) as err:
        EngineSpec.from_inputs({**spec.to_inputs(), "source_format": "hf_checkpoint", "runtime": "onnxruntime"})
    problems = dict(err.value.problems)
    assert "cannot feed the tensorrt builder" in problems["source_format"]
    assert "does not load tensorrt artifacts" in problems["runtime"]


def test_llm_specs_need_fp8_calibration_and_lora_needs_base_key():
    target = Target.for_gpu("h100", "tensorrt_llm")
    source = SourceRef("store://sources/llama/", SHA, "hf_checkpoint")
    llm = spec_for("llm", "tensorrt_llm", source, target, BuilderSettings(precision="fp8", llm=LlmSettings()))
    with pytest.raises(SpecError, match="calibrated by ModelOpt"):
        EngineSpec.from_inputs(llm.to_inputs())
    adapter = SourceRef("store://sources/lora/", SHA, "lora_adapter")
    lora = spec_for("lora", "lora", adapter, target, BuilderSettings(precision="bf16", llm=LlmSettings()))
    with pytest.raises(SpecError, match="base_model_key"):
        EngineSpec.from_inputs(lora.to_inputs())
    assert set(CODE_VERSIONS) == {"tensorrt", "onnxruntime", "tensorrt_llm", "lora"}


def test_differences_name_the_input_and_whether_it_rebuilds():
    old = trt_spec().to_inputs()
    new = trt_spec(precision="bf16").to_inputs()
    new["source_uri"] = "s3://bucket/other.onnx"
    changes = spec_differences(old, new)
    assert [(c.name, c.keyed) for c in changes] == [("precision", True), ("source_uri", False)]
    assert changes[0].describe() == "precision: 'fp16' -> 'bf16' (rebuild)"
    assert spec_differences(old, dict(old)) == []
