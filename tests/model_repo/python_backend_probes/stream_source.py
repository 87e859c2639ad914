"""A decoupled model: ``N`` responses of ``OUT`` (4 floats), then the empty final one; with config parameter
``stall_s``, it waits that long first (a stage that hangs)."""

import time

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import triton


class TritonPythonModel:
    def initialize(self, args):
        self.stall_s = float(triton.parameters(triton.parse_config(args)).get("stall_s", "0"))

    def execute(self, requests):
        for request in requests:
            time.sleep(self.stall_s)
            sender = request.get_response_sender()
            count = int(pb_utils.get_input_tensor_by_name(request, "N").as_numpy().reshape(-1)[0])
            for i in range(count):
                out = pb_utils.Tensor("OUT", np.full(4, i, dtype=np.float32))
                sender.send(pb_utils.InferenceResponse(output_tensors=[out]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
