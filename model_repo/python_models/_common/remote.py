"""Call a model over gRPC: a model another Triton server serves, or a decoupled model of this one.

BLS (``_common.bls``) reaches only the models of the server it runs in. On the gpu target each GPU pool
runs its own server, so a model of the speech pool that calls the LLM pool's model (the voice pipeline
calling ``llm_chat``) goes over gRPC instead. Its config names the pool (``<role>_endpoint_pool``,
rendered for cross-pool calls only), and every Triton pod gets ``TRITON_GRPC_ENDPOINTS``: JSON mapping
each GPU pool's name to its server's ``host:port`` (infra/triton/deployment.py). A decoupled model of the same
server is streamed over gRPC too, at :func:`own_endpoint` (``TRITON_OWN_GRPC_ENDPOINT``): the Python backend's
decoupled BLS frees responses on a thread without the GIL (see ``_common.bls``).

:func:`resolve_endpoint` turns a pool name into that address once, at model load, with an error naming
the parameter, the pool and the fix. :class:`RemoteModels` is ``bls.async_call`` over gRPC, and streams a decoupled
model's responses (the empty final response ends the stream; closing it early cancels the request).

It holds one ``grpc.aio`` channel per endpoint for the model's life, on the stub's event loop: every turn's request
is an HTTP/2 stream on that one connection -- no connection set-up per turn, no thread waiting per stream, and no
channel closed while its calls may still use it (the first version opened a ``tritonclient`` client per stream and
closed it after each). Requests are Triton's protocol messages (``tritonclient.grpc.service_pb2``): the async
client cannot ask for the empty final response that ends a stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence

import numpy as np

ENDPOINTS_ENV = "TRITON_GRPC_ENDPOINTS"
ENDPOINT_POOL_SUFFIX = "_endpoint_pool"
OWN_ENDPOINT_ENV = "TRITON_OWN_GRPC_ENDPOINT"
DEFAULT_OWN_ENDPOINT = "127.0.0.1:8001"  # tritonserver's default --grpc-port, on loopback


def own_endpoint(caller: str, environ: Mapping[str, str] | None = None) -> str:
    """``host:port`` where this model's own server answers gRPC (``TRITON_OWN_GRPC_ENDPOINT``, else Triton's default
    port on loopback): the decoupled stages of the same server are streamed through it (``_common.bls`` says why
    not through BLS). RuntimeError naming the variable when it is not ``host:port``."""
    environ = os.environ if environ is None else environ
    endpoint = environ.get(OWN_ENDPOINT_ENV) or DEFAULT_OWN_ENDPOINT
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        raise RuntimeError(
            f"{caller}: {OWN_ENDPOINT_ENV} is {endpoint!r}; set it to host:port of this server's gRPC endpoint "
            f"(its --grpc-port), e.g. {DEFAULT_OWN_ENDPOINT}"
        )
    return endpoint


def resolve_endpoint(caller: str, parameter: str, pool: str, environ: Mapping[str, str] | None = None) -> str:
    """``host:port`` of ``pool``'s gRPC endpoint from ``TRITON_GRPC_ENDPOINTS``; RuntimeError if it is not there."""
    environ = os.environ if environ is None else environ
    where = f"{caller}: config parameter {parameter} = {pool!r} says the model it calls is served by GPU pool {pool!r}"
    raw = environ.get(ENDPOINTS_ENV)
    if not raw:
        raise RuntimeError(
            f"{where}, but {ENDPOINTS_ENV} is not set; Triton pods get it from their Deployment "
            f'(JSON pool name -> host:port); to run elsewhere set e.g. {ENDPOINTS_ENV}=\'{{"{pool}": "host:8001"}}\''
        )
    try:
        endpoints = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"{where}, but {ENDPOINTS_ENV} is not JSON ({exc}): {raw!r}") from None
    if not isinstance(endpoints, dict):
        raise RuntimeError(f"{where}, but {ENDPOINTS_ENV} is not a JSON object of pool name -> host:port: {raw!r}")
    endpoint = endpoints.get(pool)
    if not isinstance(endpoint, str) or not endpoint:
        raise RuntimeError(
            f"{where}, but {ENDPOINTS_ENV} names no endpoint for {pool!r} (it has {sorted(endpoints)}); "
            f"name the GPU pool that serves it {pool!r} in the stack config, or set the parameter to one of these"
        )
    return endpoint


def _request(model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str], stream: bool = False):
    """Triton's ``ModelInferRequest`` for ``model``; on a stream, it asks for the empty final response that ends it."""
    from tritonclient.grpc import service_pb2
    from tritonclient.utils import np_to_triton_dtype, serialize_byte_tensor

    request = service_pb2.ModelInferRequest(model_name=model, id=uuid.uuid4().hex)
    for name, value in inputs.items():
        request.inputs.add(name=name, datatype=np_to_triton_dtype(value.dtype), shape=list(value.shape))
        raw = (
            serialize_byte_tensor(value).item() if value.dtype == np.object_ else np.ascontiguousarray(value).tobytes()
        )
        request.raw_input_contents.append(raw)
    for name in outputs:
        request.outputs.add(name=name)
    if stream:
        request.parameters["triton_enable_empty_final_response"].bool_param = True
    return request


def _found(response, outputs: Sequence[str]) -> dict[str, np.ndarray]:
    from tritonclient.grpc import InferResult

    result = InferResult(response)
    return {o.name: result.as_numpy(o.name) for o in response.outputs if o.name in outputs}


class RemoteModels:
    """gRPC calls to models of other Triton servers, from the model's event loop; failures raise RuntimeError naming
    model and endpoint."""

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self._stubs: dict[str, object] = {}

    def _stub(self, endpoint: str):
        # Made on first use, inside a coroutine: a grpc.aio channel belongs to the loop that is running then.
        if endpoint not in self._stubs:
            import grpc
            from tritonclient.grpc import service_pb2_grpc

            unlimited = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
            channel = grpc.aio.insecure_channel(endpoint, options=unlimited)
            self._stubs[endpoint] = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        return self._stubs[endpoint]

    async def call(
        self, endpoint: str, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Run ``model`` once on the server at ``endpoint``; every requested output must come back."""
        import grpc

        try:
            response = await self._stub(endpoint).ModelInfer(_request(model, inputs, outputs), timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise RuntimeError(f"model {model!r} at {endpoint} failed: {exc.details()}") from None
        found = _found(response, outputs)
        missing = [name for name in outputs if found.get(name) is None]
        if missing:
            raise RuntimeError(f"model {model!r} at {endpoint} returned no {missing}")
        return found

    async def stream(
        self,
        endpoint: str,
        model: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str],
    ) -> AsyncIterator[dict[str, np.ndarray]]:
        """Each response of decoupled ``model`` at ``endpoint`` that carries outputs, as it arrives.

        The stream ends at the response flagged final. If the consumer stops early (closes the generator,
        e.g. because its own caller hung up), the remote request is cancelled, so the LLM stops generating
        and frees its KV cache instead of finishing an answer nobody reads.
        """
        import grpc

        request, done = _request(model, inputs, outputs, stream=True), asyncio.Event()

        async def requests():
            yield request
            await done.wait()  # the request side stays open until the last response, as Triton's own client keeps it

        call = self._stub(endpoint).ModelStreamInfer(requests())
        finished = False
        try:
            while True:
                try:
                    async with asyncio.timeout(self.timeout_s):  # no task per read, unlike wait_for
                        message = await call.read()
                except TimeoutError:
                    raise RuntimeError(
                        f"model {model!r} at {endpoint} sent nothing for {self.timeout_s:g} s; is its server up?"
                    ) from None
                except grpc.aio.AioRpcError as exc:
                    finished = True  # the call is over
                    raise RuntimeError(f"model {model!r} at {endpoint} failed: {exc.details()}") from None
                if message is grpc.aio.EOF:
                    finished = True
                    raise RuntimeError(f"model {model!r} at {endpoint} ended the stream before its final response")
                if message.error_message:
                    finished = True  # the server ended this request
                    raise RuntimeError(f"model {model!r} at {endpoint} failed: {message.error_message}")
                found = _found(message.infer_response, outputs)
                if found:
                    yield found
                if message.infer_response.parameters["triton_final_response"].bool_param:
                    finished = True
                    return
        finally:
            done.set()
            if not finished:
                call.cancel()
