"""A coroutine model that streams ``chunks`` ``ROUNDS`` times, one after another, and returns, per round, the time
to the first response and to the end (microseconds, measured inside the stub as the voice pipeline would see them).

``VIA`` 0: decoupled BLS, the way the voice pipeline streamed its stages before (``async_exec(decoupled=True)``, each
``next`` waited for on a thread); 1: gRPC to this server (``_common.remote``), the way it streams them now.
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import remote, triton

WAITERS = ThreadPoolExecutor(max_workers=4)


class TritonPythonModel:
    def initialize(self, args):
        self.count = np.array([int(triton.parameters(triton.parse_config(args))["chunks"])], dtype=np.int32)
        self.endpoint = remote.own_endpoint(args["model_name"])
        self.remote = remote.RemoteModels(timeout_s=30)

    async def _bls(self) -> tuple[float, float]:
        request = pb_utils.InferenceRequest(
            model_name="chunks", inputs=[pb_utils.Tensor("N", self.count)], requested_output_names=["AUDIO"]
        )
        start, first = time.perf_counter(), None
        responses = await request.async_exec(decoupled=True)
        loop = asyncio.get_running_loop()
        while (response := await loop.run_in_executor(WAITERS, next, responses, None)) is not None:
            tensor = pb_utils.get_output_tensor_by_name(response, "AUDIO")
            if tensor is not None:
                tensor.as_numpy()
                first = first or time.perf_counter()
        return first - start, time.perf_counter() - start

    async def _grpc(self) -> tuple[float, float]:
        start, first = time.perf_counter(), None
        async for _ in self.remote.stream(self.endpoint, "chunks", {"N": self.count}, ["AUDIO"]):
            first = first or time.perf_counter()
        return first - start, time.perf_counter() - start

    async def execute(self, requests):
        out = []
        for request in requests:
            via = self._grpc if int(triton.input_array(request, "VIA").reshape(-1)[0]) else self._bls
            times = [await via() for _ in range(int(triton.input_array(request, "ROUNDS").reshape(-1)[0]))]
            first, total = (np.array(t, dtype=np.float64) * 1e6 for t in zip(*times, strict=True))
            out.append(
                pb_utils.InferenceResponse([pb_utils.Tensor("FIRST_US", first), pb_utils.Tensor("TOTAL_US", total)])
            )
        return out
