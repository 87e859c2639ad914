"""The Engine provider's methods called as plain Python, with the real ONNX Runtime builder and a real store.

Inputs go through Pulumi's own property serialization first, so the provider sees what it would see
under the engine (numbers as floats, None dropped).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest
from pulumi.runtime import rpc

from engines.builders.base import BuildError
from engines.builders.onnxruntime_builder import OnnxRuntimeBuilder
from engines.onnx_checks import run_onnx
from engines.provider import PROVIDER_VERSION, EngineProvider
from engines.spec import Calibration, InputProfile, SourceRef, content_key
from engines.store import LocalStore
from platform_spec.digests import file_sha256
from tests.engines.conftest import cpu_spec, write_mlp


def engine_inputs(spec, store_uri: str, **extra) -> dict:
    props = {
        **spec.to_inputs(),
        "key": content_key(spec),
        "store": store_uri,
        "runner": {"kind": "local"},
        "delete_artifacts": False,
        "provider_version": PROVIDER_VERSION,
        **extra,
    }
    return as_engine_sees(props)


def as_engine_sees(props: dict) -> dict:
    struct = asyncio.run(rpc.serialize_properties(props, {}))
    return rpc.deserialize_properties(struct)


@pytest.fixture
def builds(monkeypatch):
    """Counts real builds (the builder still runs)."""
    calls = []
    original = OnnxRuntimeBuilder.build

    def counting(self, spec, source, ctx):
        calls.append(spec.settings.precision)
        return original(self, spec, source, ctx)

    monkeypatch.setattr(OnnxRuntimeBuilder, "build", counting)
    return calls


def test_create_builds_on_miss_then_adopts_on_hit(mlp_onnx, store_dir, builds):
    provider = EngineProvider()
    props = engine_inputs(cpu_spec(mlp_onnx), store_dir.as_uri())
    checked = provider.check({}, props)
    assert checked.failures == []

    first = provider.create(checked.inputs)
    assert first.id == content_key(cpu_spec(mlp_onnx))
    assert first.outs["cache_hit"] is False and builds == ["fp32"]
    assert first.outs["files"] == ["build.log", "model.onnx"]
    assert first.outs["primary_uri"].endswith(f"/engines/{first.id}/artifact/model.onnx")
    assert first.outs["versions"]["onnxruntime"] and first.outs["build_seconds"] >= 0

    store = LocalStore(store_dir)
    meta = store.verify(first.id).metadata
    assert meta.sha256 == first.outs["sha256"] and meta.size_bytes == first.outs["size_bytes"] > 0
    assert meta.inputs["precision"] == "fp32" and "parity vs source" in meta.log_excerpt
    # The published engine is a working model that agrees with its source.
    x = {"x": np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)}
    built = store.artifact_path(first.id) / "model.onnx"
    np.testing.assert_allclose(run_onnx(built, x)[1][0], run_onnx(mlp_onnx, x)[1][0], rtol=1e-4, atol=1e-5)

    # A second create with the same inputs (another stack, or state lost): adopted, not rebuilt.
    second = provider.create(checked.inputs)
    assert second.id == first.id and second.outs["cache_hit"] is True
    assert second.outs["sha256"] == first.outs["sha256"]
    assert builds == ["fp32"]


def test_diff_no_change_and_precision_change_names_the_input(mlp_onnx, store_dir, builds):
    provider = EngineProvider()
    props = engine_inputs(cpu_spec(mlp_onnx), store_dir.as_uri())
    created = provider.create(provider.check({}, props).inputs)
    olds = as_engine_sees(created.outs)

    same = provider.diff(created.id, olds, provider.check(olds, props).inputs)
    assert same.changes is False and same.replaces == []

    fp16 = engine_inputs(cpu_spec(mlp_onnx, precision="fp16"), store_dir.as_uri())
    changed = provider.diff(created.id, olds, provider.check(olds, fp16).inputs)
    assert changed.changes is True
    assert changed.replaces == ["precision"]
    assert changed.delete_before_replace is False

    # Moving the source file (same bytes) changes no key: an in-place update, no rebuild.
    moved = mlp_onnx.with_name("moved.onnx")
    shutil.copyfile(mlp_onnx, moved)
    relocated = engine_inputs(cpu_spec(mlp_onnx), store_dir.as_uri(), source_uri=moved.as_uri())
    in_place = provider.diff(created.id, olds, provider.check(olds, relocated).inputs)
    assert in_place.changes is True and in_place.replaces == []
    updated = provider.update(created.id, olds, provider.check(olds, relocated).inputs)
    assert updated.outs["cache_hit"] is True and updated.outs["source_uri"] == moved.as_uri()
    assert updated.outs["sha256"] == created.outs["sha256"]
    assert builds == ["fp32"]


def test_read_finds_artifact_deleted_or_damaged_out_of_band(mlp_onnx, store_dir, builds):
    provider = EngineProvider()
    props = provider.check({}, engine_inputs(cpu_spec(mlp_onnx), store_dir.as_uri())).inputs
    created = provider.create(props)
    state = as_engine_sees(created.outs)

    intact = provider.read(created.id, state)
    assert intact.id == created.id and intact.outs["sha256"] == created.outs["sha256"]

    artifact = LocalStore(store_dir).artifact_path(created.id) / "model.onnx"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    assert provider.read(created.id, state).id == ""

    shutil.rmtree(store_dir / "engines" / created.id)
    assert provider.read(created.id, state).id == ""

    # The next up rebuilds it.
    again = provider.create(props)
    assert again.outs["cache_hit"] is False and builds == ["fp32", "fp32"]


def test_delete_keeps_by_default_removes_when_configured_and_tolerates_missing(mlp_onnx, store_dir, builds):
    provider = EngineProvider()
    kept = provider.check({}, engine_inputs(cpu_spec(mlp_onnx), store_dir.as_uri())).inputs
    created = provider.create(kept)
    store = LocalStore(store_dir)

    provider.delete(created.id, as_engine_sees(created.outs))
    assert store.verify(created.id).ok

    removable = as_engine_sees({**created.outs, "delete_artifacts": True})
    provider.delete(created.id, removable)
    assert not store.verify(created.id).ok and store.keys() == []
    provider.delete(created.id, removable)  # already gone: fine
    shutil.rmtree(store_dir)
    provider.delete(created.id, removable)  # whole store gone: fine


def _store_is_empty(store_dir: Path) -> bool:
    engines = store_dir / "engines"
    tmp = store_dir / ".tmp"
    return (not engines.exists() or not any(engines.iterdir())) and (not tmp.exists() or not any(tmp.iterdir()))


def test_failing_build_publishes_nothing(mlp_onnx, store_dir):
    provider = EngineProvider()
    spec = cpu_spec(mlp_onnx, profiles=(InputProfile("tokens", (1,), (2,), (4,)),))
    checked = provider.check({}, engine_inputs(spec, store_dir.as_uri()))
    assert checked.failures == []  # the profile is well-formed; only the model can say it is wrong
    with pytest.raises(BuildError, match="profile input 'tokens' is not an input of mlp.onnx"):
        provider.create(checked.inputs)
    assert _store_is_empty(store_dir)


def test_failure_inside_the_tool_publishes_nothing(mlp_onnx, store_dir, tmp_path):
    provider = EngineProvider()
    calibration = tmp_path / "calibration.npz"
    np.savez(calibration, wrong_input=np.zeros((2, 1, 16), np.float32))
    data = SourceRef(calibration.as_uri(), file_sha256(calibration), "calibration")
    spec = cpu_spec(mlp_onnx, precision="int8", calibration=Calibration("calibrator", data))
    props = provider.check({}, engine_inputs(spec, store_dir.as_uri())).inputs
    with pytest.raises(BuildError, match=r"lacks inputs \['x'\]"):
        provider.create(props)
    assert _store_is_empty(store_dir)


def test_corrupt_missing_or_changed_onnx_gives_a_clear_error(tmp_path, store_dir):
    provider = EngineProvider()
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    props = provider.check({}, engine_inputs(cpu_spec(corrupt), store_dir.as_uri())).inputs
    with pytest.raises(BuildError, match="corrupt.onnx is not a valid ONNX model"):
        provider.create(props)

    source = write_mlp(tmp_path / "gone.onnx")
    props = provider.check({}, engine_inputs(cpu_spec(source), store_dir.as_uri())).inputs
    source.unlink()
    with pytest.raises(BuildError, match=r"source_uri 'file://.*gone.onnx' does not exist"):
        provider.create(props)

    source = write_mlp(tmp_path / "changed.onnx")
    props = provider.check({}, engine_inputs(cpu_spec(source), store_dir.as_uri())).inputs
    write_mlp(source, seed=7)
    with pytest.raises(BuildError, match="but the spec pins"):
        provider.create(props)
    assert _store_is_empty(store_dir)


def test_check_names_input_value_and_fix(mlp_onnx, store_dir):
    provider = EngineProvider()
    props = engine_inputs(cpu_spec(mlp_onnx), store_dir.as_uri())
    result = provider.check({}, {**props, "precision": "fp8", "store": "ftp://x/y", "key": "0" * 64})
    reasons = {f.property: f.reason for f in result.failures}
    assert "'fp8' is not supported by the onnxruntime builder" in reasons["precision"]
    assert "scheme 'ftp'" in reasons["store"]
    result = provider.check({}, {**props, "key": "0" * 64})
    assert [f.property for f in result.failures] == ["key"]
    result = provider.check({}, {**props, "runner": {"kind": "kubernetes"}})
    assert "runner.pool is required" in result.failures[0].reason
    bad_profile = [{"name": "x", "min": [4], "opt": [2], "max": [8]}]
    result = provider.check({}, {**props, "workspace_mib": -1, "profiles": bad_profile})
    reasons = {f.property: f.reason for f in result.failures}
    assert "-1 must be an integer" in reasons["workspace_mib"]
    assert "min <= opt <= max" in reasons["profiles[0]"]
