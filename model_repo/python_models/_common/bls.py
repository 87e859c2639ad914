"""Business Logic Scripting: call another model of the same Triton server from a Python model.

``call`` is one request/response; ``async_call`` is the same for coroutine (async) models, which serve many requests
at once. A failed call raises RuntimeError naming the model and carrying its error message, so the caller's client
learns which stage failed and why.

Decoupled (streaming) models are not called through BLS but over gRPC (``_common.remote``): the Python backend keeps
each decoupled BLS stream's responses in a map that a thread of its own, holding no GIL, empties after the stream
ends; when that thread lets go of the last reference, the responses' numpy arrays are freed without the GIL (in
Triton 2.51, r24.10) and the stub's heap is corrupted -- the voice pipeline's stub died of it, at random, on the GPU
machine. From 25.01 that free takes the GIL while the thread holds the map's lock, which a thread holding the GIL
also takes to start a stream: a lock-order inversion. ``tests/model_repo/test_python_backend_frees_without_gil.py``
shows the first on the real server.

Where outputs live: a TensorRT model on a GPU instance returns its outputs in GPU memory, which
``as_numpy()`` cannot read ("Tensor is stored in GPU ..."). Every call asks Triton for its outputs in CPU
memory (``preferred_memory``), decided edge by edge because each caller's next step runs on the CPU: the
TDT loop slices encoder frames and takes argmaxes, embeddings are pooled in numpy, and the one GPU -> GPU
edge (FastPitch -> HiFi-GAN) must first cut the spectrogram to ``num_frames``, since a dynamic batch pads it
-- a round trip of ~0.1 MB a sentence, microseconds against the vocoder's milliseconds. Keeping it on the
GPU through DLPack would need ``num_frames`` on the CPU anyway, and a tensor framework in the image to cut it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import triton_python_backend_utils as pb_utils


def _request(model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]):
    return pb_utils.InferenceRequest(
        model_name=model,
        inputs=[pb_utils.Tensor(name, value) for name, value in inputs.items()],
        requested_output_names=list(outputs),
        # (PreferredMemory exists once the stub serves, not while it imports the model to read its config.)
        preferred_memory=pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0),
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


def _complete(model: str, found: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
    missing = [name for name in outputs if name not in found]
    if missing:
        raise RuntimeError(f"model {model!r} returned no {missing}")
    return found


def call(model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
    """Run ``model`` once; every requested output must come back."""
    return _complete(model, _unpack(model, _request(model, inputs, outputs).exec(), outputs), outputs)


async def async_call(model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
    """``call`` for coroutine models: the event loop serves other requests while ``model`` runs."""
    response = await _request(model, inputs, outputs).async_exec()
    return _complete(model, _unpack(model, response, outputs), outputs)
