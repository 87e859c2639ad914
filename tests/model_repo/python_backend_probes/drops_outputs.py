"""A decoupled model whose output ``DROPPED`` runs Python code when its array is freed (a buffer with ``__del__``).

Its client asks for ``KEPT`` only. Config parameter ``send``: ``all`` sends both outputs and lets Triton drop the other
(what Triton's own examples do); ``requested`` sends through ``_common.triton.send_outputs``. Freed without the GIL,
the buffer's ``__del__`` stops the stub with a fatal error -- the same free, running no Python code, corrupts the heap
silently instead.
"""

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import triton

FREED: list[int] = []


class _Buffer(bytearray):
    def __del__(self):
        FREED.append(len(self))  # Python code: needs the GIL


def _kept() -> np.ndarray:
    return np.zeros(1, dtype=np.float32)


def _dropped() -> np.ndarray:
    return np.frombuffer(_Buffer(16), dtype=np.float32)


class TritonPythonModel:
    def initialize(self, args):
        self.send = triton.parameters(triton.parse_config(args))["send"]

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            if self.send == "requested":
                triton.send_outputs(sender, triton.requested(request), KEPT=_kept(), DROPPED=_dropped())
            else:  # built inline: the response's tensor holds the only reference to DROPPED's array
                sender.send(
                    pb_utils.InferenceResponse(
                        output_tensors=[pb_utils.Tensor("KEPT", _kept()), pb_utils.Tensor("DROPPED", _dropped())]
                    )
                )
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
