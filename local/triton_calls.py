"""One inference over gRPC with tritonclient: request/response or a decoupled stream, with timings.

Used by the smoke check, the local run's voice turn and the tuning sweep's correctness probe. Load
generation does not go through here (it uses raw ``grpc.aio`` stubs, :mod:`local.loadgen`).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

FINAL_FLAG = "triton_final_response"


class CallError(RuntimeError):
    """The server answered with an error (or not at all); the message names the model."""


@dataclass(frozen=True)
class StreamedResponse:
    at_s: float  # seconds since the request was sent
    outputs: dict[str, np.ndarray]
    final: bool


def grpc_client(url: str):
    import tritonclient.grpc as grpcclient

    return grpcclient.InferenceServerClient(url=url)


def _inputs(inputs: Mapping[str, np.ndarray]):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    built = []
    for name, value in inputs.items():
        value = np.asarray(value)
        datatype = (
            "BYTES" if value.dtype == np.object_ or value.dtype.type == np.bytes_ else np_to_triton_dtype(value.dtype)
        )
        tensor = grpcclient.InferInput(name, list(value.shape), datatype)
        tensor.set_data_from_numpy(value)
        built.append(tensor)
    return built


def _outputs(names: Sequence[str] | None):
    import tritonclient.grpc as grpcclient

    return None if not names else [grpcclient.InferRequestedOutput(n) for n in names]


def _as_dict(result, names: Sequence[str]) -> dict[str, np.ndarray]:
    found = {}
    for name in names:
        value = result.as_numpy(name)
        if value is not None:
            found[name] = value
    return found


def infer(
    client,
    model: str,
    inputs: Mapping[str, np.ndarray],
    outputs: Sequence[str],
    timeout_s: float = 60.0,
) -> tuple[dict[str, np.ndarray], float]:
    """Run ``model`` once; return the requested outputs and the latency in seconds."""
    from tritonclient.utils import InferenceServerException

    started = time.monotonic()
    try:
        result = client.infer(model, _inputs(inputs), outputs=_outputs(outputs), client_timeout=timeout_s)
    except InferenceServerException as exc:
        raise CallError(f"model {model!r}: {exc.message()}") from None
    return _as_dict(result, outputs), time.monotonic() - started


def stream(
    client,
    model: str,
    inputs: Mapping[str, np.ndarray],
    outputs: Sequence[str],
    timeout_s: float = 120.0,
    hang_up_after: int | None = None,
) -> tuple[list[StreamedResponse], float]:
    """Run decoupled ``model`` once over a gRPC stream; every response until the final one, and the total time.
    ``hang_up_after``: stop after that many responses and cancel the request, as a caller who barges in."""
    from tritonclient.utils import InferenceServerException

    arrived: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: arrived.put((time.monotonic(), result, error)))
    responses: list[StreamedResponse] = []
    completed = False
    try:
        started = time.monotonic()
        try:
            client.async_stream_infer(
                model, _inputs(inputs), outputs=_outputs(outputs), enable_empty_final_response=True
            )
        except InferenceServerException as exc:
            raise CallError(f"model {model!r}: {exc.message()}") from None
        deadline = started + timeout_s
        while True:
            try:
                at, result, error = arrived.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise CallError(
                    f"model {model!r}: no final response within {timeout_s:.0f}s ({len(responses)} responses so far)"
                ) from None
            if error is not None:
                raise CallError(f"model {model!r}: {error.message() if hasattr(error, 'message') else error}")
            final = result.get_response().parameters[FINAL_FLAG].bool_param
            responses.append(StreamedResponse(at - started, _as_dict(result, outputs), final))
            if final:
                completed = True
            if final or len(responses) == hang_up_after:
                return responses, at - started
    finally:
        # Cancel only a request that did not finish. Seen with Triton 2.51: cancelling the stream after the
        # final response of a decoupled Python model (the LLM) left that model unable to unload at shutdown.
        client.stop_stream(cancel_requests=not completed)
