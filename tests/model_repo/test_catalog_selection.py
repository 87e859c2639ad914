"""The model catalog: its entries, stack selection, precision rules and tuning overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from model_repo import catalog
from model_repo.catalog import CATALOG, CatalogError
from platform_spec.settings import ModelSelection, load_stack_settings


def sel(enabled: bool = True, precision: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(enabled=enabled, precision=precision)


# --- the entries ----------------------------------------------------------------------------------


def test_catalog_covers_every_role_and_the_production_lineup():
    roles = {spec.role for spec in CATALOG.values()}
    assert roles == set(catalog.ROLES)
    llms = [s for s in CATALOG.values() if s.role == "llm"]
    assert len(llms) == 2
    assert all("Llama-3.1-8B" in s.source.uri or "llama-3.1-8b" in s.source.uri for s in llms)
    assert all(s.precision.default == "fp8" for s in llms)
    # The LoRA option: one variant is an adapter on the other.
    lora = [s for s in llms if s.lora is not None]
    assert len(lora) == 1 and lora[0].lora.base in CATALOG
    assert "parakeet-tdt" in CATALOG["asr"].source.uri
    assert {e.name for e in CATALOG["tts"].engines} == {"tts_fastpitch", "tts_hifigan"}


def test_every_entry_has_a_serving_per_target_and_passes_validation():
    for spec in CATALOG.values():
        catalog.validate_spec(spec)
        assert set(spec.serving) == {"gpu", "cpu"}
        cpu = spec.target("cpu")
        assert cpu.backend == "python" and cpu.instance_group.kind == "KIND_CPU"
        assert cpu.weights  # every model says what weights it serves on CPU


def test_streaming_models_are_decoupled_without_triton_batching():
    decoupled = {s.name for s in CATALOG.values() if s.decoupled}
    assert decoupled == {"llm_chat", "llm_support", "tts", "voice_pipeline"}
    assert all(CATALOG[n].batching.max_batch_size == 0 for n in decoupled)


def test_audio_models_take_a_sample_rate_input():
    for spec in CATALOG.values():
        names = {t.name for t in spec.inputs}
        if "AUDIO" in names:
            rate = next(t for t in spec.inputs if t.name == "SAMPLE_RATE")
            assert (rate.dtype, rate.dims) == ("TYPE_INT32", (1,)), spec.name
    assert catalog.AUDIO_SAMPLE_RATE == 16_000


def test_cpu_weights_labels_say_what_is_real():
    labels = {name: spec.target("cpu").weights for name, spec in CATALOG.items()}
    assert labels["vad"] == labels["anc"] == labels["embed"] == catalog.WEIGHTS_PACKAGED
    # Trained models ship in packages for ASR and the LLMs: no cpu model is random-weight any more.
    assert labels["llm_chat"] == labels["llm_support"] == labels["asr"] == catalog.WEIGHTS_PACKAGED
    assert catalog.WEIGHTS_RANDOM not in labels.values()
    assert labels["tts"] == catalog.WEIGHTS_PACKAGED


@pytest.mark.parametrize("artifact", [catalog.SILERO_VAD, catalog.MINILM_WEIGHTS, catalog.RNNOISE_LIB])
def test_packaged_artifact_pins_match_the_installed_wheels(artifact):
    module, _, rel = artifact.uri.removeprefix("package://").partition("/")
    path = Path(importlib.util.find_spec(module).origin).parent / rel
    assert hashlib.sha256(path.read_bytes()).hexdigest() == artifact.sha256, (
        f"{path} changed; pin the new digest or the old package version"
    )


def test_validate_spec_rejects_broken_entries():
    asr = CATALOG["asr"]
    bad_dtype = dataclasses.replace(asr, inputs=(catalog.Tensor("AUDIO", "FP32", (-1,)),))
    with pytest.raises(CatalogError, match=r"'AUDIO' dtype 'FP32' is not a Triton type"):
        catalog.validate_spec(bad_dtype)
    bad_dims = dataclasses.replace(asr, outputs=(catalog.Tensor("TRANSCRIPT", "TYPE_STRING", (0,)),))
    with pytest.raises(CatalogError, match=r"dims \[0\]"):
        catalog.validate_spec(bad_dims)
    streaming_batched = dataclasses.replace(CATALOG["tts"], batching=catalog.Batching(8))
    with pytest.raises(CatalogError, match="decoupled models use max_batch_size 0"):
        catalog.validate_spec(streaming_batched)
    bad_pref = dataclasses.replace(asr, batching=catalog.Batching(4, (8,), 100))
    with pytest.raises(CatalogError, match=r"preferred batch sizes \[8\]"):
        catalog.validate_spec(bad_pref)


# --- selection ------------------------------------------------------------------------------------


def test_default_selection_is_everything_in_dependency_order():
    specs = catalog.select({})
    names = [s.name for s in specs]
    assert set(names) == set(CATALOG)
    for spec in specs:
        for dep in spec.depends_on:
            assert names.index(dep) < names.index(spec.name)
    assert all(s.precision_in_use == s.precision.default for s in specs)


def test_selection_applies_precision_and_the_memory_estimate_follows():
    specs = {s.name: s for s in catalog.select({"llm_chat": sel(precision="bf16"), "asr": sel(precision="fp32")})}
    assert specs["llm_chat"].precision_in_use == "bf16"
    assert specs["llm_chat"].gpu_memory_estimate_mib > specs["llm_support"].gpu_memory_estimate_mib
    assert specs["asr"].gpu_memory_estimate_mib == CATALOG["asr"].gpu_memory_mib["fp32"]


def test_unknown_model_name_is_named_with_the_catalog():
    with pytest.raises(CatalogError) as err:
        catalog.select({"whisper": sel()})
    assert "models.whisper" in str(err.value) and "'asr'" in str(err.value)


def test_disallowed_precision_names_model_value_and_allowed():
    with pytest.raises(CatalogError) as err:
        catalog.select({"llm_chat": sel(precision="int4")})
    message = str(err.value)
    assert "models.llm_chat.precision = 'int4'" in message
    assert "['fp8', 'bf16']" in message


def test_disabling_a_pipeline_dependency_is_an_error_unless_the_pipeline_goes_too():
    with pytest.raises(CatalogError, match=r"models\.asr\.enabled = false: voice_pipeline calls asr"):
        catalog.select({"asr": sel(enabled=False)})
    names = [s.name for s in catalog.select({"asr": sel(False), "voice_pipeline": sel(False)})]
    assert "asr" not in names and "voice_pipeline" not in names and "vad" in names


def test_all_problems_are_reported_at_once():
    with pytest.raises(CatalogError) as err:
        catalog.select({"nope": sel(), "tts": sel(precision="fp8")})
    assert "models.nope" in str(err.value) and "models.tts.precision" in str(err.value)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_settings_feed_select(stack):
    settings = load_stack_settings(stack)
    specs = catalog.select(settings.models)
    assert {s.name for s in specs} <= set(CATALOG)
    assert specs, f"stack {stack} serves no model"


def test_settings_model_selection_objects_work_directly():
    specs = catalog.select({"tts": ModelSelection(enabled=True, precision="fp32")})
    assert {s.name: s for s in specs}["tts"].precision_in_use == "fp32"


def test_fp8_needs_an_fp8_gpu():
    llm = {s.name: s for s in catalog.select({})}["llm_chat"]
    catalog.check_precision_for_gpu(llm, "l40s")
    with pytest.raises(CatalogError, match=r"fp8 needs FP8 tensor cores, which a10g lacks.*\['bf16'\]"):
        catalog.check_precision_for_gpu(llm, "a10g")
    with pytest.raises(CatalogError, match="unknown GPU SKU 'x1'"):
        catalog.check_precision_for_gpu(llm, "x1")


# --- overrides ------------------------------------------------------------------------------------


def write(tmp_path: Path, target: str, text: str) -> Path:
    (tmp_path / f"{target}.yaml").write_text(text)
    return tmp_path


def test_no_override_file_means_no_overrides(tmp_path):
    assert catalog.load_overrides("gpu", tmp_path) == {}


def test_overrides_change_batching_and_instances_for_their_target_only(tmp_path):
    write(
        tmp_path,
        "gpu",
        "models:\n  embed: {max_batch_size: 16, max_queue_delay_us: 250, instance_count: 3}\n"
        "  llm_chat: {instance_count: 2}\n",
    )
    overrides = catalog.load_overrides("gpu", tmp_path)
    specs = {s.name: s for s in catalog.apply_overrides(catalog.select({}), "gpu", overrides)}
    embed = catalog.effective_batching(specs["embed"], "gpu")
    # Preferred sizes above the new max are dropped, the rest kept.
    assert (embed.max_batch_size, embed.preferred_batch_sizes, embed.max_queue_delay_us) == (16, (8, 16), 250)
    assert specs["embed"].target("gpu").instance_group.count == 3
    assert specs["embed"].target("cpu").instance_group.count == 1
    assert catalog.effective_batching(specs["embed"], "cpu").max_batch_size == 32
    assert specs["llm_chat"].target("gpu").instance_group.count == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:\n  bogus: {instance_count: 2}\n", r"models\.bogus: unknown model"),
        ("models:\n  asr: {max_batch: 2}\n", r"unknown keys \['max_batch'\]"),
        ("models:\n  asr: {instance_count: 0}\n", r"instance_count = 0: must be an integer >= 1"),
        ("models:\n  asr: {max_queue_delay_us: fast}\n", r"max_queue_delay_us = 'fast'"),
        ("models:\n  asr: {preferred_batch_sizes: [2, 64]}\n", r"\[64\] exceed max_batch_size 8"),
        ("models:\n  llm_chat: {max_batch_size: 8}\n", r"llm_chat does not use Triton batching"),
        ("models: [asr]\n", r"'models' must map model names"),
        ("asr: {}\n", r"expected a mapping with one key 'models'"),
        ("models: {asr: [1\n", r"not valid YAML"),
    ],
)
def test_bad_overrides_are_rejected_with_the_file_and_key(tmp_path, text, expected):
    write(tmp_path, "cpu", text)
    with pytest.raises(CatalogError, match=expected) as err:
        catalog.load_overrides("cpu", tmp_path)
    assert str(tmp_path / "cpu.yaml") in str(err.value)


def test_unknown_target_is_rejected():
    with pytest.raises(CatalogError, match="target 'tpu'"):
        catalog.load_overrides("tpu")


def test_gpu_memory_by_pool_counts_gpu_instances_only():
    specs = catalog.select({})
    totals = catalog.gpu_memory_by_pool(specs)
    # Two FP8 Llama variants, one KIND_GPU instance each; speech: one instance of each engine set.
    assert totals["llm"] == 2 * catalog.CATALOG["llm_chat"].gpu_memory_mib["fp8"]
    assert totals["speech"] == sum(catalog.CATALOG[n].gpu_memory_mib["fp16"] for n in ("asr", "tts", "embed"))
    bf16 = catalog.gpu_memory_by_pool(catalog.select({"llm_chat": sel(precision="bf16")}))
    assert bf16["llm"] > totals["llm"]
    # What the dev stack's LLM pool GPU holds (L40S, 48 GiB) must cover the default lineup.
    from platform_spec import gpus

    assert totals["llm"] <= gpus.GPU_SKUS["l40s"].memory_gib * 1024


def test_serving_precision_per_target():
    specs = {s.name: s for s in catalog.select({"asr": sel(precision="fp32")})}
    assert catalog.serving_precision(specs["asr"], "gpu") == "fp32"
    assert catalog.serving_precision(specs["llm_chat"], "gpu") == "fp8"
    assert catalog.serving_precision(specs["llm_chat"], "cpu") == "fp32"
    assert catalog.serving_precision(specs["voice_pipeline"], "gpu") == "none"
