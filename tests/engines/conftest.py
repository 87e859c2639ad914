"""Small real ONNX models built with onnx.helper, and specs over them, for the engine tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engines.builders import spec_for
from engines.spec import BuilderSettings, InputProfile, SourceRef, Target
from platform_spec.digests import file_sha256


def write_mlp(path: Path, features: int = 16, hidden: int = 32, outputs: int = 8, seed: int = 0) -> Path:
    """x[batch, features] -> relu(x W1 + b1) W2 + b2, a dynamic batch axis, fixed random weights."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.standard_normal((features, hidden)).astype(np.float32) * 0.2, "w1"),
        numpy_helper.from_array(rng.standard_normal(hidden).astype(np.float32) * 0.1, "b1"),
        numpy_helper.from_array(rng.standard_normal((hidden, outputs)).astype(np.float32) * 0.2, "w2"),
        numpy_helper.from_array(rng.standard_normal(outputs).astype(np.float32) * 0.1, "b2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["y0"]),
        helper.make_node("Add", ["y0", "b2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", outputs])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def mlp_profile(features: int = 16) -> tuple[InputProfile, ...]:
    return (InputProfile("x", (1, features), (4, features), (16, features)),)


def cpu_spec(path: Path, model: str = "mlp", precision: str = "fp32", **settings):
    settings.setdefault("profiles", mlp_profile())
    return spec_for(
        model,
        "onnxruntime",
        SourceRef(path.as_uri(), file_sha256(path), "onnx"),
        Target.cpu(),
        BuilderSettings(precision=precision, **settings),
    )


@pytest.fixture
def mlp_onnx(tmp_path: Path) -> Path:
    return write_mlp(tmp_path / "mlp.onnx")


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path
