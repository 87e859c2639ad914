"""Business Logic Scripting: call another model of the same Triton server from a Python model.

``call`` is one request/response; ``stream`` iterates a decoupled model's responses. A failed call
raises RuntimeError naming the model and carrying its error message, so the caller's client learns
which stage failed and why.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import triton_python_backend_utils as pb_utils


def _request(model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]):
    return pb_utils.InferenceRequest(
        model_name=model,
        inputs=[pb_utils.Tensor(name, value) for name, value in inputs.items()],
        requested_output_names=list(outputs),
    )


def _unpack(model: str, response, outputs: Sequence[str]) -> dict[str, np.ndarray]:
    if response.has_error():
        raise RuntimeError(f"model {model!r} failed: {response.error().message()}")
    found = {}
    for name in outputs:
        tensor = pb_utils.get_output_tensor_by_name(response, name)
        if tensor is not None:
            found[name] = tensor.as_numpy()
    return found


def call(model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
    """Run ``model`` once; every requested output must come back."""
    found = _unpack(model, _request(model, inputs, outputs).exec(), outputs)
    missing = [name for name in outputs if name not in found]
    if missing:
        raise RuntimeError(f"model {model!r} returned no {missing}")
    return found


def stream(model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
    """Each response of decoupled ``model`` that carries outputs (the empty final one is skipped)."""
    for response in _request(model, inputs, outputs).exec(decoupled=True):
        found = _unpack(model, response, outputs)
        if found:
            yield found
