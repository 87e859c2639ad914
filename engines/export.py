"""PyTorch -> ONNX export helpers: dynamic axes, the ONNX checker, constant folding, numerical parity.

``export_onnx`` is how a model whose source is a PyTorch module becomes the pinned ONNX source of an
engine: it exports with named dynamic axes (so TensorRT optimization profiles and Triton's dynamic
batching can vary them), folds constants, runs the full ONNX checker and compares ONNX Runtime's
outputs with the module's on the example inputs. A model that fails any step is not written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.onnx_checks import Parity, compare, run_onnx
from platform_spec.digests import file_sha256


class ExportError(RuntimeError):
    pass


@dataclass(frozen=True)
class ExportReport:
    path: Path
    sha256: str
    parity: Parity
    opset: int


def export_onnx(
    module: Any,
    example_inputs: Sequence[Any],
    path: Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    opset: int = 18,
    atol: float = 1e-4,
    rtol: float = 1e-3,
) -> ExportReport:
    """Export ``module`` (in eval mode) to ``path``; raise ExportError (and leave no file) on any failure."""
    import onnx
    import torch

    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    module = module.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(
                module,
                tuple(example_inputs),
                str(tmp),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()},
                opset_version=opset,
                dynamo=True,
                external_data=False,
            )
            expected = module(*example_inputs)
        model = fold_constants(onnx.load(str(tmp)))
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
        _check_dynamic_axes(model, dynamic_axes)
        expected = _flat_outputs(expected)
        feeds = {name: t.detach().cpu().numpy() for name, t in zip(input_names, example_inputs, strict=True)}
        names, got = run_onnx(tmp, feeds)
        parity = compare([e.detach().cpu().numpy().astype(np.float64) for e in expected], got, "fp32", names)
        tolerance_ok = parity.max_abs_diff <= atol + rtol * max(1.0, max(float(np.abs(e).max()) for e in got))
        if not (parity.ok or tolerance_ok):
            raise ExportError(f"ONNX Runtime disagrees with PyTorch on the example inputs: {parity.detail}")
        os.replace(tmp, path)
        return ExportReport(path, file_sha256(path), parity, opset)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001  (torch.onnx, onnx.checker raise many types)
        what = f"export of {type(module).__name__} to {path.name}"
        raise ExportError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def fold_constants(model: Any) -> Any:
    """Fold constant subgraphs and drop unused nodes (onnxscript's optimizer); returns a ModelProto."""
    import onnxscript.optimizer

    return onnxscript.optimizer.optimize(model)


def _check_dynamic_axes(model: Any, dynamic_axes: Mapping[str, Mapping[int, str]]) -> None:
    values = {v.name: v for v in list(model.graph.input) + list(model.graph.output)}
    for name, axes in dynamic_axes.items():
        if name not in values:
            raise ExportError(f"dynamic axes name {name!r}, which is neither an input nor an output of the export")
        dims = values[name].type.tensor_type.shape.dim
        for axis in axes:
            if axis >= len(dims) or dims[axis].HasField("dim_value"):
                raise ExportError(
                    f"{name} axis {axis} was exported as a fixed size; the module specializes on it "
                    "(e.g. a reshape with a hard-coded batch)"
                )


def _flat_outputs(value: Any) -> list[Any]:
    """A module's outputs as a list of tensors (a tensor, a tuple, or a transformers ModelOutput)."""
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if hasattr(value, "to_tuple"):
        value = value.to_tuple()
    elif isinstance(value, Mapping):
        value = tuple(value.values())
    return [v for v in value if isinstance(v, torch.Tensor)]
