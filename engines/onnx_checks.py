"""Load an ONNX model with a clear error, and compare two models numerically through ONNX Runtime.

Shared by the ONNX Runtime builder, the TensorRT builder (profile checks before a GPU is spent)
and the PyTorch export helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.spec import InputProfile


class OnnxModelError(ValueError):
    """The ONNX file is not a usable model; the message names the file and the fix."""


# ONNX TensorProto element types -> numpy dtypes, for the types real inputs use.
_NUMPY_OF_ONNX = {
    1: np.float32,
    2: np.uint8,
    3: np.int8,
    6: np.int32,
    7: np.int64,
    9: np.bool_,
    10: np.float16,
    11: np.float64,
}


def load_checked(path: Path) -> Any:
    """``onnx.load`` + ``onnx.checker`` on the file, or an OnnxModelError naming the file."""
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001  (protobuf raises DecodeError and friends)
        raise OnnxModelError(
            f"{path.name} is not a valid ONNX model ({type(exc).__name__}: {exc}); re-export it "
            "(engines.export.export_onnx) and pin the new file's sha256"
        ) from None
    try:
        # Checking the path (not the proto) also covers models with external data and >2 GB.
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001
        raise OnnxModelError(f"{path.name} fails the ONNX checker: {exc}; fix the exporter or the graph") from None
    if not model.graph.input:
        raise OnnxModelError(f"{path.name} has no graph inputs; it cannot be served")
    return model


def graph_inputs(model: Any) -> dict[str, tuple[int, list[int | str]]]:
    """name -> (ONNX element type, dims with symbolic names for dynamic axes), initializers excluded."""
    initializers = {i.name for i in model.graph.initializer}
    out = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in tensor.shape.dim]
        out[value.name] = (tensor.elem_type, dims)
    return out


def profile_problems(model: Any, profiles: tuple[InputProfile, ...], file_name: str) -> list[str]:
    """Every way the optimization profiles disagree with the model's inputs."""
    inputs = graph_inputs(model)
    problems = []
    for p in profiles:
        if p.name not in inputs:
            problems.append(f"profile input {p.name!r} is not an input of {file_name}; its inputs are {sorted(inputs)}")
            continue
        dims = inputs[p.name][1]
        if len(dims) != len(p.min):
            problems.append(f"profile {p.name!r} has rank {len(p.min)} but {file_name} declares {p.name} as {dims}")
            continue
        for axis, fixed in enumerate(dims):
            if isinstance(fixed, int) and fixed > 0 and not (p.min[axis] == p.opt[axis] == p.max[axis] == fixed):
                problems.append(
                    f"profile {p.name!r} axis {axis} ranges {p.min[axis]}..{p.max[axis]} but {file_name} fixes it "
                    f"to {fixed}; use {fixed} for min, opt and max"
                )
    dynamic = [n for n, (_, dims) in inputs.items() if any(not isinstance(d, int) or d <= 0 for d in dims)]
    missing = [n for n in dynamic if n not in {p.name for p in profiles}]
    if profiles and missing:
        problems.append(f"inputs {missing} of {file_name} have dynamic axes but no profile; add one per dynamic input")
    return problems


def sample_inputs(model: Any, profiles: tuple[InputProfile, ...], seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic inputs at the profiles' opt shapes (dynamic axes without a profile get 1)."""
    rng = np.random.default_rng(seed)
    shapes = {p.name: p.opt for p in profiles}
    out = {}
    for name, (elem, dims) in graph_inputs(model).items():
        shape = shapes.get(name) or tuple(d if isinstance(d, int) and d > 0 else 1 for d in dims)
        dtype = _NUMPY_OF_ONNX.get(elem)
        if dtype is None:
            raise OnnxModelError(f"input {name!r} has ONNX element type {elem}, which no sample generator covers")
        if np.issubdtype(dtype, np.floating):
            out[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype is np.bool_:
            out[name] = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            # 0/1 are valid token ids, attention-mask values and token-type ids alike.
            out[name] = rng.integers(0, 2, shape).astype(dtype)
    return out


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    max_rel_diff: float
    atol: float
    rtol: float
    ok: bool
    detail: str


# How far an optimized model may drift from its source, per precision (int8 is judged by cosine).
TOLERANCE = {"fp32": (1e-4, 1e-3), "fp16": (5e-2, 5e-2), "bf16": (1e-1, 1e-1)}


def compare(reference: list[np.ndarray], candidate: list[np.ndarray], precision: str, names: list[str]) -> Parity:
    atol, rtol = TOLERANCE.get(precision, (np.inf, np.inf))
    worst_abs = worst_rel = 0.0
    details = []
    ok = True
    for name, ref, got in zip(names, reference, candidate, strict=True):
        ref = np.asarray(ref, dtype=np.float64)
        got = np.asarray(got, dtype=np.float64)
        if ref.shape != got.shape:
            return Parity(np.inf, np.inf, atol, rtol, False, f"output {name}: shape {got.shape} != {ref.shape}")
        diff = np.abs(ref - got)
        abs_diff = float(diff.max()) if diff.size else 0.0
        rel_diff = float((diff / (np.abs(ref) + 1e-6)).max()) if diff.size else 0.0
        worst_abs, worst_rel = max(worst_abs, abs_diff), max(worst_rel, rel_diff)
        if precision == "int8":
            denom = float(np.linalg.norm(ref) * np.linalg.norm(got)) or 1.0
            cosine = float((ref.ravel() @ got.ravel()) / denom)
            ok &= cosine >= 0.98
            details.append(f"{name}: max|diff| {abs_diff:.3g}, cosine {cosine:.4f}")
        else:
            ok &= bool(np.all(diff <= atol + rtol * np.abs(ref)))
            details.append(f"{name}: max|diff| {abs_diff:.3g}")
    return Parity(worst_abs, worst_rel, atol, rtol, ok, "; ".join(details))


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> tuple[list[str], list[np.ndarray]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures come back as exceptions the callers report
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return names, session.run(names, feeds)
