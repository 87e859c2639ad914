"""A coroutine model that streams ``stream_source`` ``ROUNDS`` times and reports how many of the response arrays it
saw freed (``FREED``). Each array gets a weakref finalizer -- Python code that runs when the array is freed, so a free
on a thread without the GIL crashes the stub at once instead of corrupting its heap silently.

Config parameter ``via``: ``bls`` streams through decoupled BLS (``async_exec(decoupled=True)``), as the voice pipeline
did; ``grpc`` streams over gRPC to this server (``_common.remote``), as it does now.
"""

import asyncio
import weakref

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import remote, triton

FREED: list[int] = []


def _freed() -> None:
    FREED.append(1)


class TritonPythonModel:
    def initialize(self, args):
        self.via = triton.parameters(triton.parse_config(args))["via"]
        self.endpoint = remote.own_endpoint(args["model_name"])
        self.remote = remote.RemoteModels(timeout_s=30)

    async def _bls_round(self) -> None:
        request = pb_utils.InferenceRequest(
            model_name="stream_source",
            inputs=[pb_utils.Tensor("N", np.array([3], dtype=np.int32))],
            requested_output_names=["OUT"],
        )
        responses = await request.async_exec(decoupled=True)
        for _ in range(3):
            weakref.finalize(pb_utils.get_output_tensor_by_name(next(responses), "OUT").as_numpy(), _freed)
        await asyncio.sleep(0.2)  # the empty final response has arrived by now: reading it below does not wait
        # Log lines go out on the cleanup thread too: queued first, they keep it busy, so this coroutine lets go of
        # the stream before that thread does -- what a busy pipeline does by chance, made certain.
        for _ in range(50):
            pb_utils.Logger.log_info("probe: the cleanup thread is busy")
        next(responses)  # the final response: the stream's cleanup is queued, behind the log lines

    async def _grpc_round(self) -> None:
        inputs = {"N": np.array([3], dtype=np.int32)}
        async for found in self.remote.stream(self.endpoint, "stream_source", inputs, ["OUT"]):
            weakref.finalize(found["OUT"], _freed)

    async def execute(self, requests):
        out = []
        for request in requests:
            rounds = int(triton.input_array(request, "ROUNDS").reshape(-1)[0])
            for _ in range(rounds):
                await (self._bls_round() if self.via == "bls" else self._grpc_round())
                await asyncio.sleep(0.02)  # the cleanup thread has run by now: the arrays are freed, one way or other
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("FREED", np.array([len(FREED)], dtype=np.int32))]))
        return out
