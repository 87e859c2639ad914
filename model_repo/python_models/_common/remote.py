"""Call a model that another Triton server serves, over gRPC.

BLS (``_common.bls``) reaches only the models of the server it runs in. On the gpu target each GPU pool
runs its own server, so a model of the speech pool that calls the LLM pool's model (the voice pipeline
calling ``llm_chat``) goes over gRPC instead. Its config names the pool (``<role>_endpoint_pool``,
rendered for cross-pool calls only), and every Triton pod gets ``TRITON_GRPC_ENDPOINTS``: JSON mapping
each GPU pool's name to its server's ``host:port`` (infra/triton/deployment.py).

:func:`resolve_endpoint` turns a pool name into that address once, at model load, with an error naming
the parameter, the pool and the fix. :class:`RemoteModels` mirrors ``bls.call`` / ``bls.stream``: one
request/response, or the responses of a decoupled model over a gRPC stream (the empty final response
ends it). It keeps one client per endpoint; a Python-backend instance runs its requests one at a time,
so one stream per client at a time is all it needs.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

ENDPOINTS_ENV = "TRITON_GRPC_ENDPOINTS"
ENDPOINT_POOL_SUFFIX = "_endpoint_pool"


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


def _inputs(grpcclient, inputs: Mapping[str, np.ndarray]):
    from tritonclient.utils import np_to_triton_dtype

    tensors = []
    for name, value in inputs.items():
        tensor = grpcclient.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
        tensor.set_data_from_numpy(value)
        tensors.append(tensor)
    return tensors


class RemoteModels:
    """gRPC calls to models of other Triton servers; failures raise RuntimeError naming model and endpoint."""

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self._clients: dict[str, object] = {}
        self._lock = threading.Lock()

    def _client(self, endpoint: str):
        import tritonclient.grpc as grpcclient

        with self._lock:
            if endpoint not in self._clients:
                self._clients[endpoint] = grpcclient.InferenceServerClient(endpoint)
            return self._clients[endpoint]

    def call(
        self, endpoint: str, model: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str]
    ) -> dict[str, np.ndarray]:
        """Run ``model`` once on the server at ``endpoint``; every requested output must come back."""
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        try:
            result = self._client(endpoint).infer(
                model,
                _inputs(grpcclient, inputs),
                outputs=[grpcclient.InferRequestedOutput(name) for name in outputs],
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as exc:
            raise RuntimeError(f"model {model!r} at {endpoint} failed: {exc.message()}") from None
        found = {name: result.as_numpy(name) for name in outputs}
        missing = [name for name, value in found.items() if value is None]
        if missing:
            raise RuntimeError(f"model {model!r} at {endpoint} returned no {missing}")
        return found

    def stream(
        self,
        endpoint: str,
        model: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str],
    ) -> Iterator[dict[str, np.ndarray]]:
        """Each response of decoupled ``model`` at ``endpoint`` that carries outputs, as it arrives.

        The stream ends at the response flagged final. If the consumer stops early (closes the generator,
        e.g. because its own caller hung up), the remote request is cancelled, so the LLM stops generating
        and frees its KV cache instead of finishing an answer nobody reads.
        """
        import tritonclient.grpc as grpcclient

        # A client holds one stream at a time, and turns stream concurrently: each stream gets its own client.
        client = grpcclient.InferenceServerClient(endpoint)
        arrived: queue.Queue = queue.Queue()
        client.start_stream(callback=lambda result, error: arrived.put((result, error)))
        finished = False
        try:
            client.async_stream_infer(
                model,
                _inputs(grpcclient, inputs),
                outputs=[grpcclient.InferRequestedOutput(name) for name in outputs],
                request_id=uuid.uuid4().hex,
                enable_empty_final_response=True,
            )
            while True:
                try:
                    result, error = arrived.get(timeout=self.timeout_s)
                except queue.Empty:
                    raise RuntimeError(
                        f"model {model!r} at {endpoint} sent nothing for {self.timeout_s:g} s; is its server up?"
                    ) from None
                if error is not None:
                    finished = True  # the server ended this request
                    message = error.message() if hasattr(error, "message") else str(error)
                    raise RuntimeError(f"model {model!r} at {endpoint} failed: {message}")
                response = result.get_response()
                found = {o.name: result.as_numpy(o.name) for o in response.outputs if o.name in outputs}
                if found:
                    yield found
                if response.parameters["triton_final_response"].bool_param:
                    finished = True
                    return
        finally:
            client.stop_stream(cancel_requests=not finished)
            client.close()
