"""Where a GPU engine's BLS outputs live, asked twice: as Triton returns them by default, and the way ``_common/bls``
asks (``preferred_memory`` CPU). The first answer is why the gpu target's glue must ask; the second that it works."""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import bls

ENGINE = "asr_encoder"


class TritonPythonModel:
    def execute(self, requests):
        features = np.random.default_rng(0).standard_normal((1, 128, 800)).astype(np.float32)
        inputs = {"audio_signal": features, "length": np.array([[800]], dtype=np.int64)}
        default = pb_utils.InferenceRequest(
            model_name=ENGINE,
            inputs=[pb_utils.Tensor(k, v) for k, v in inputs.items()],
            requested_output_names=["outputs"],
        ).exec()
        tensor = pb_utils.get_output_tensor_by_name(default, "outputs")
        try:
            tensor.as_numpy()
            numpy_error = ""
        except Exception as exc:  # noqa: BLE001 - the error is the answer
            numpy_error = str(exc)
        via_bls = bls.call(ENGINE, inputs, ["outputs"])["outputs"]
        out = [
            pb_utils.Tensor("DEFAULT_ON_CPU", np.array([tensor.is_cpu()], dtype=np.bool_)),
            pb_utils.Tensor("NUMPY_ERROR", np.array([numpy_error.encode()], dtype=np.object_)),
            pb_utils.Tensor("BLS_SHAPE", np.array(via_bls.shape, dtype=np.int64)),
        ]
        return [pb_utils.InferenceResponse(output_tensors=out) for _ in requests]
