"""A decoupled stage standing in for TTS: ``N`` responses of ``AUDIO`` (``samples`` float32 each), then the final."""

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import triton


class TritonPythonModel:
    def initialize(self, args):
        self.samples = int(triton.parameters(triton.parse_config(args))["samples"])

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            for _ in range(int(triton.input_array(request, "N").reshape(-1)[0])):
                chunk = pb_utils.Tensor("AUDIO", np.zeros(self.samples, dtype=np.float32))
                sender.send(pb_utils.InferenceResponse(output_tensors=[chunk]))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
