"""Calibration sets: an ``.npz`` holding, per model input, an array whose first axis indexes batches.

``data[name][i]`` is the i-th calibration batch of input ``name`` (a full input tensor, batch
dimension included). The same file feeds ONNX Runtime static quantization, TensorRT's INT8
calibrator and ModelOpt's Q/DQ calibration.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class CalibrationDataError(ValueError):
    pass


def load_batches(path: Path, input_names: list[str], limit: int) -> list[dict[str, np.ndarray]]:
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise CalibrationDataError(f"calibration data {Path(path).name} is not a readable .npz ({exc})") from None
    with archive:
        missing = [n for n in input_names if n not in archive.files]
        if missing:
            raise CalibrationDataError(
                f"calibration data {Path(path).name} lacks inputs {missing} (it has {archive.files}); "
                "save one array per model input, first axis = batch index"
            )
        counts = {n: archive[n].shape[0] for n in input_names}
        if len(set(counts.values())) != 1:
            raise CalibrationDataError(f"calibration arrays disagree on the number of batches: {counts}")
        total = min(next(iter(counts.values())), limit)
        if total == 0:
            raise CalibrationDataError(f"calibration data {Path(path).name} holds no batches")
        arrays = {n: archive[n] for n in input_names}
    return [{n: np.ascontiguousarray(arrays[n][i]) for n in input_names} for i in range(total)]


def stacked(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """All batches concatenated along the batch axis (the layout ModelOpt's ONNX quantizer expects)."""
    return {name: np.concatenate([b[name] for b in batches], axis=0) for name in batches[0]}
