"""Glue to Triton's Python backend: parameters, inputs, error responses. Imported only inside Triton."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from _common.audio import check_audio
from _common.errors import BadRequest

DEFAULT_MAX_AUDIO_SECONDS = 30.0


def parse_config(args: dict[str, Any]) -> dict[str, Any]:
    return json.loads(args["model_config"])


def require_decoupled(model_config: dict[str, Any], model_name: str) -> None:
    """Streaming models send many responses per request: refuse to load without the decoupled policy."""
    if not pb_utils.using_decoupled_model_transaction_policy(model_config):
        raise RuntimeError(f"{model_name}: this model streams; set model_transaction_policy.decoupled")


def parameters(model_config: dict[str, Any]) -> dict[str, str]:
    """``config.pbtxt`` parameters as plain strings."""
    return {k: v["string_value"] for k, v in model_config.get("parameters", {}).items()}


def batched(model_config: dict[str, Any]) -> bool:
    """True when inputs carry a leading batch dimension (``max_batch_size > 0``)."""
    return int(model_config.get("max_batch_size", 0)) > 0


def error(message: str) -> Any:
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)


def error_response(exc: Exception) -> Any:
    """A response carrying an error the client sees verbatim (bad input) or with its type (a bug)."""
    if isinstance(exc, BadRequest):
        return pb_utils.InferenceResponse(output_tensors=[], error=error(str(exc)))
    return pb_utils.InferenceResponse(
        output_tensors=[], error=pb_utils.TritonError(f"internal error: {type(exc).__name__}: {exc}")
    )


def requested(request: Any) -> frozenset[str]:
    """The outputs ``request`` asks for (all of the model's when its client named none: Triton fills them in)."""
    return frozenset(request.requested_output_names())


def send_outputs(sender: Any, wanted: Collection[str], **outputs: np.ndarray) -> None:
    """One response of a stream carrying the ``outputs`` its request asked for (``wanted``); nothing is sent when
    it asked for none of them.

    Why not send them all and let Triton drop the rest: the Python backend of Triton 2.51 (r24.10; the server the
    local platform and the GPU tests run) drops them inside ``send`` with the GIL released, and freeing a numpy
    array without the GIL corrupts the stub's heap -- it crashes later, in unrelated code (triton-inference-server/
    python_backend#390, fixed in 25.01). Every client that asks for part of a stream's outputs would set it off.
    """
    tensors = [pb_utils.Tensor(name, value) for name, value in outputs.items() if name in wanted]
    if tensors:
        sender.send(pb_utils.InferenceResponse(output_tensors=tensors))


def input_array(request: Any, name: str, *, required: bool = True) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        if required:
            raise BadRequest(f"input {name} is missing")
        return None
    return tensor.as_numpy()


def strings(array: np.ndarray, name: str) -> list[str]:
    """A TYPE_STRING tensor as a flat list of str (UTF-8), or BadRequest naming the input."""
    out = []
    for item in array.reshape(-1):
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(f"{name} is not valid UTF-8 ({exc}); send UTF-8 text") from None
        out.append(str(item))
    return out


def optional_number(request: Any, name: str, default: float, low: float, high: float, cast: Callable = int):
    """An optional [1]-shaped numeric input, range-checked: ``cast(value)`` or ``default`` when absent."""
    array = input_array(request, name, required=False)
    if array is None or array.size == 0:
        return default
    value = array.reshape(-1)[0]
    if not np.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"{name} is {value}; use a value in [{low:g}, {high:g}] (default {default:g})")
    return cast(value)


def audio_rows(request: Any, model_config: dict[str, Any], *, min_samples: int, max_seconds: float) -> np.ndarray:
    """The request's AUDIO as [rows, samples] float32, checked against its SAMPLE_RATE input."""
    audio = input_array(request, "AUDIO")
    rate = input_array(request, "SAMPLE_RATE")
    params = parameters(model_config)
    if not batched(model_config):
        audio, rate = audio[None, ...], rate[None, ...]
    return check_audio(
        audio.astype(np.float32, copy=False),
        rate,
        expected_rate=int(params.get("sample_rate", "16000")),
        min_samples=min_samples,
        max_seconds=float(params.get("max_audio_s", DEFAULT_MAX_AUDIO_SECONDS)),
    )


def execute_batch(
    requests: Sequence[Any],
    parse: Callable[[Any], Any],
    compute: Callable[[list[Any]], list[Any]],
) -> list[Any]:
    """The dynamic-batching execute loop: ``parse(request)`` validates each request on its own (a bad one
    gets its own error response and never fails the others), then ``compute(items)`` runs every valid
    item in one go and returns one InferenceResponse per item, in order."""
    responses: list[Any] = [None] * len(requests)
    items, slots = [], []
    for i, request in enumerate(requests):
        try:
            items.append(parse(request))
            slots.append(i)
        except Exception as exc:  # noqa: BLE001 - every failure becomes that request's error response
            responses[i] = error_response(exc)
    if items:
        try:
            results = compute(items)
        except Exception as exc:  # noqa: BLE001
            results = [error_response(exc)] * len(items)
        for i, response in zip(slots, results, strict=True):
            responses[i] = response
    return responses


def execute_streams(requests: Sequence[Any], stream: Callable[[Any, Any], None]) -> None:
    """The decoupled execute loop: ``stream(request, sender)`` sends one request's responses and the final
    flag; an exception ends that request's stream with its error response, and the model serves on."""
    for request in requests:
        sender = request.get_response_sender()
        try:
            stream(request, sender)
        except Exception as exc:  # noqa: BLE001 - the stream ends with the error, the model lives on
            sender.send(error_response(exc), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
    return None
