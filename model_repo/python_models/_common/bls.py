"""Business Logic Scripting: call another model of the same Triton server from a Python model.

``call`` is one request/response; ``stream`` iterates a decoupled model's responses; ``async_call`` and
``async_stream`` are the same for coroutine (async) models, which serve many requests at once. A failed
call raises RuntimeError naming the model and carrying its error message, so the caller's client learns
which stage failed and why.

Where outputs live: a TensorRT model on a GPU instance returns its outputs in GPU memory, which
``as_numpy()`` cannot read ("Tensor is stored in GPU ..."). Every call asks Triton for its outputs in CPU
memory (``preferred_memory``), decided edge by edge because each caller's next step runs on the CPU: the
TDT loop slices encoder frames and takes argmaxes, embeddings are pooled in numpy, and the one GPU -> GPU
edge (FastPitch -> HiFi-GAN) must first cut the spectrogram to ``num_frames``, since a dynamic batch pads it
-- a round trip of ~0.1 MB a sentence, microseconds against the vocoder's milliseconds. Keeping it on the
GPU through DLPack would need ``num_frames`` on the CPU anyway, and a tensor framework in the image to cut it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

# A decoupled BLS call's response iterator blocks in __next__ (also after async_exec): each live stream of a
# coroutine model waits for its next response on one of these threads, so the event loop never blocks.
STREAM_WAITERS = ThreadPoolExecutor(max_workers=512, thread_name_prefix="bls-stream")


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


def stream(model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
    """Each response of decoupled ``model`` that carries outputs (the empty final one is skipped)."""
    for response in _request(model, inputs, outputs).exec(decoupled=True):
        found = _unpack(model, response, outputs)
        if found:
            yield found


async def async_call(model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
    """``call`` for coroutine models: the event loop serves other requests while ``model`` runs."""
    response = await _request(model, inputs, outputs).async_exec()
    return _complete(model, _unpack(model, response, outputs), outputs)


async def waited(items: Iterator[Any]) -> AsyncIterator[Any]:
    """Each item of a blocking iterator (a decoupled BLS call's responses, a gRPC stream's), waited for on one of
    ``STREAM_WAITERS`` so the event loop serves other requests meanwhile."""
    loop = asyncio.get_running_loop()
    while (item := await loop.run_in_executor(STREAM_WAITERS, next, items, None)) is not None:
        yield item


async def async_stream(
    model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
) -> AsyncIterator[dict[str, np.ndarray]]:
    """``stream`` for coroutine models. Stopped early (``aclose``), it cancels the request where the server
    supports BLS cancellation (``ResponseIterator.cancel``, Triton 24.08+), so the stage stops working for a
    turn nobody listens to any more."""
    responses = await _request(model, inputs, outputs).async_exec(decoupled=True)
    finished = False
    try:
        async for response in waited(responses):
            found = _unpack(model, response, outputs)
            if found:
                yield found
        finished = True
    finally:
        if not finished and hasattr(responses, "cancel"):
            responses.cancel()
