"""The CPU artifacts the served models load: cached, reproducible, verified, and never half-written.

Uses the cheap artifacts (packaged files, the tiny LLM) with a private cache per test; the
expensive exports (MiniLM, Conformer) are exercised by the serving tests' render.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import pytest

from model_repo import catalog
from model_repo.artifacts import ArtifactError, build_cpu_artifact, cpu_recipe
from model_repo.artifacts.store import MANIFEST

PYTHON_MODELS = Path(__file__).resolve().parents[2] / "model_repo" / "python_models"


def _files(directory: Path) -> dict[str, str]:
    return json.loads((directory / MANIFEST).read_text())["files"]


def test_second_build_reuses_the_cache_and_places_identical_files(tmp_path):
    spec = catalog.CATALOG["asr"]
    cache = tmp_path / "cache"
    first = build_cpu_artifact(spec, tmp_path / "a" / "1", cache_dir=cache)
    entry = next((cache / "asr").iterdir())
    built_at = entry.stat().st_mtime_ns
    started = time.monotonic()
    second = build_cpu_artifact(spec, tmp_path / "b" / "1", cache_dir=cache)
    assert time.monotonic() - started < 2.0
    assert entry.stat().st_mtime_ns == built_at, "the cached entry was reused, not rebuilt"
    assert first.name == second.name == "model.bin"
    assert _files(first.parent) == _files(second.parent)
    manifest = json.loads((first.parent / MANIFEST).read_text())
    assert manifest["weights"] == catalog.WEIGHTS_PACKAGED
    assert manifest["uri"] == spec.target("cpu").artifact.uri


def test_the_llm_checkpoint_is_converted_once_with_its_chat_template(tmp_path):
    """SmolLM2's GGUF becomes a Hugging Face checkpoint (weights, config, tokenizer with the chat template); both
    LLM variants share it (same key: one conversion), and a rebuild in a fresh cache gives the same bytes."""
    chat, support = catalog.CATALOG["llm_chat"], catalog.CATALOG["llm_support"]
    assert cpu_recipe(chat, tmp_path).key == cpu_recipe(support, tmp_path).key
    one = build_cpu_artifact(chat, tmp_path / "one" / "1", cache_dir=tmp_path / "c1")
    two = build_cpu_artifact(support, tmp_path / "two" / "1", cache_dir=tmp_path / "c1")
    assert len(list((tmp_path / "c1" / "llm").iterdir())) == 1
    assert _files(one.parent) == _files(two.parent)
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"} <= set(_files(one.parent))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(one.parent))
    hello = [{"role": "user", "content": "hi"}]
    text = tokenizer.apply_chat_template(hello, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and "<|im_start|>user\nhi<|im_end|>" in text


def test_a_corrupted_cache_entry_is_rebuilt_not_served(tmp_path):
    spec = catalog.CATALOG["vad"]
    cache = tmp_path / "cache"
    build_cpu_artifact(spec, tmp_path / "a" / "1", cache_dir=cache)
    entry = next((cache / "vad").iterdir())
    with open(entry / "silero_vad.onnx", "r+b") as handle:
        handle.write(b"garbage")
    placed = build_cpu_artifact(spec, tmp_path / "b" / "1", cache_dir=cache)
    assert _files(placed.parent)["silero_vad.onnx"] == spec.target("cpu").artifact.sha256


def test_a_packaged_file_that_differs_from_the_pin_is_refused(tmp_path):
    spec = catalog.CATALOG["vad"]
    serving = spec.target("cpu")
    wrong = dataclasses.replace(serving, artifact=dataclasses.replace(serving.artifact, sha256="0" * 64))
    bad = dataclasses.replace(spec, serving={**spec.serving, "cpu": wrong})
    with pytest.raises(ArtifactError, match=r"model 'vad': .*silero_vad.onnx has sha256 .* catalog pins 0{64}"):
        build_cpu_artifact(bad, tmp_path / "vad" / "1", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "vad" / "1").exists() or not any((tmp_path / "vad" / "1").iterdir())


def test_a_failing_build_leaves_no_cache_entry_and_no_files(tmp_path, monkeypatch):
    # The disk fills while Whisper's companion files are copied: the model file is already in the scratch directory.
    from model_repo.artifacts import packaged

    copied, copyfile = [], packaged.shutil.copyfile

    def copy_until_full(source, target):
        if copied:
            raise OSError(28, "No space left on device")
        copied.append(copyfile(source, target))

    monkeypatch.setattr(packaged.shutil, "copyfile", copy_until_full)
    cache, dest = tmp_path / "cache", tmp_path / "asr" / "1"
    with pytest.raises(ArtifactError, match=r"model 'asr': building package://\S+ failed: OSError: .*No space left"):
        build_cpu_artifact(catalog.CATALOG["asr"], dest, cache_dir=cache)
    assert len(copied) == 1, "the build had written part of its output when it failed"
    assert list((cache / "asr").iterdir()) == [], "no entry and no temporary directory left in the cache"
    assert not dest.exists()


def test_the_cache_key_follows_what_decides_the_bytes(tmp_path):
    asr = catalog.CATALOG["asr"]
    assert cpu_recipe(asr, tmp_path).key == cpu_recipe(asr, tmp_path).key
    serving = asr.target("cpu")
    other = dataclasses.replace(serving, artifact=catalog.Artifact(serving.artifact.uri, "0" * 64))
    with pytest.raises(ArtifactError, match=r"has sha256 1a5afae0.*but the catalog pins 0{64}"):
        cpu_recipe(dataclasses.replace(asr, serving={**asr.serving, "cpu": other}), tmp_path)


def test_an_unpinned_packaged_model_is_refused_with_the_fix(tmp_path):
    spec = catalog.CATALOG["llm_chat"]
    serving = spec.target("cpu")
    unpinned = dataclasses.replace(serving, artifact=catalog.Artifact(serving.artifact.uri))
    with pytest.raises(ArtifactError, match=r"is a packaged file; the catalog must pin its sha256"):
        cpu_recipe(dataclasses.replace(spec, serving={**spec.serving, "cpu": unpinned}), tmp_path)


def test_a_served_model_refuses_a_corrupted_copy(tmp_path, monkeypatch):
    """What every model's initialize() does first: check the files against artifact.json."""
    monkeypatch.syspath_prepend(str(PYTHON_MODELS))
    sys.modules.pop("_common.artifact", None)
    from _common.artifact import load_verified

    placed = build_cpu_artifact(catalog.CATALOG["vad"], tmp_path / "vad" / "1", cache_dir=tmp_path / "cache")
    assert load_verified(placed.parent)["main_file"] == "silero_vad.onnx"
    placed.write_bytes(placed.read_bytes()[:-10])
    with pytest.raises(RuntimeError, match=r"silero_vad.onnx has sha256 .* the copy is corrupt; render the model"):
        load_verified(placed.parent)
