"""TensorRT's implicit INT8 calibrator fed from a calibration set (``engines.calibration_data``).

TensorRT 10 deprecates implicit quantization in favour of explicit Q/DQ (calibration method
``modelopt``); this path stays for models whose accuracy was validated with it. Device buffers come
from Polygraphy's CUDA wrapper, which ships in the TensorRT image (no pycuda/cuda-python needed).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np


def make_calibrator(trt: ModuleType, batches: list[dict[str, np.ndarray]], cache_path: Path, algorithm: str):
    from polygraphy import cuda

    base = trt.IInt8EntropyCalibrator2 if algorithm == "entropy" else trt.IInt8MinMaxCalibrator

    class Calibrator(base):
        def __init__(self):
            base.__init__(self)
            self._batches = iter(batches)
            self._device: dict[str, cuda.DeviceArray] = {}

        def get_batch_size(self):
            return 1  # explicit-batch networks: the batch dimension is part of each tensor

        def get_batch(self, names):
            batch = next(self._batches, None)
            if batch is None:
                return None
            pointers = []
            for name in names:
                host = np.ascontiguousarray(batch[name])
                device = self._device.get(name)
                if device is None:
                    device = self._device[name] = cuda.DeviceArray(shape=host.shape, dtype=host.dtype)
                device.resize(host.shape)  # reallocates only when the batch grew
                device.copy_from(host)
                pointers.append(device.ptr)
            return pointers

        def read_calibration_cache(self):
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache):
            cache_path.write_bytes(bytes(cache))

    return Calibrator()
