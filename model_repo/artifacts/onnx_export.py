"""Export a PyTorch module to one self-contained ONNX file, and prove the file computes what the module does.

The dynamo exporter (``torch.onnx.export(dynamo=True)``) is used because the TorchScript tracer bakes
the example's shapes into BERT-style attention masking (an export that loads but gives wrong numbers
for padded batches); every export is therefore checked against the PyTorch module on inputs whose
shapes differ from the example before it is accepted. Weights are stored inside the file (no
``.onnx.data`` side file) so the artifact is one file with one digest for ORT and the TensorRT builder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

ONNX_OPSET = 18


def export_checked(
    module,
    example: Mapping[str, np.ndarray],
    output_names: Sequence[str],
    dynamic_shapes: Mapping[str, Mapping[int, str]],
    checks: Sequence[Mapping[str, np.ndarray]],
    path: Path,
    atol: float = 1e-4,
) -> None:
    """Export ``module(**example)`` to ``path``; raise ValueError if ONNX Runtime disagrees on ``checks``.

    ``dynamic_shapes`` maps an input name to ``{axis: dim name}``; ``checks`` are further input sets
    (other batch sizes / lengths, padding) both runtimes must agree on within ``atol``.
    """
    import onnxruntime as ort
    import torch

    module = module.eval()
    dims: dict[str, torch.export.Dim] = {}
    shapes = {
        name: {axis: dims.setdefault(dim, torch.export.Dim(dim)) for axis, dim in axes.items()}
        for name, axes in dynamic_shapes.items()
    }
    args = tuple(torch.from_numpy(v) for v in example.values())
    with torch.no_grad():
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(example),
            output_names=list(output_names),
            dynamic_shapes=shapes,
            opset_version=ONNX_OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for inputs in [example, *checks]:
        got = session.run(list(output_names), dict(inputs))
        with torch.no_grad():
            want = module(*(torch.from_numpy(v) for v in inputs.values()))
        want = [want] if isinstance(want, torch.Tensor) else list(want)
        for name, g, w in zip(output_names, got, want, strict=True):
            w = w.numpy()
            if g.shape != w.shape or not np.allclose(g, w, atol=atol):
                diff = float(np.abs(g - w).max()) if g.shape == w.shape else f"shape {g.shape} vs {w.shape}"
                shapes_seen = {k: v.shape for k, v in inputs.items()}
                raise ValueError(
                    f"ONNX export of {type(module).__name__} disagrees with PyTorch on output {name!r} "
                    f"for inputs {shapes_seen}: max |diff| {diff} > {atol}"
                )
