"""RNNoise through ctypes: 16 kHz float PCM in, denoised 16 kHz float PCM out.

RNNoise works on 10 ms frames of 48 kHz audio scaled like int16, so the audio is resampled 16 -> 48 kHz
(polyphase, exact 1:3) and back. RNNoise's output lags its input by two frames (20 ms); the lag is
removed so the denoised audio lines up sample for sample with the input (VAD timestamps taken on it
stay true). One RNNoise state per utterance: the recurrent state must not leak between callers.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

RATE = 48_000
UPSAMPLE = 3  # 16 kHz -> 48 kHz
FRAME = 480  # 10 ms at 48 kHz (rnnoise_get_frame_size)
DELAY = 2 * FRAME  # measured output lag of rnnoise_process_frame
INT16_SCALE = 32768.0
_FLOATS = ctypes.POINTER(ctypes.c_float)


class RNNoise:
    def __init__(self, library: Path) -> None:
        lib = ctypes.CDLL(str(library))
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, _FLOATS, _FLOATS]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        if lib.rnnoise_get_frame_size() != FRAME:
            raise RuntimeError(f"{library}: frame size {lib.rnnoise_get_frame_size()} != {FRAME}; wrong RNNoise build")
        self.lib = lib

    def denoise(self, audio_16k: np.ndarray) -> np.ndarray:
        """Denoise one utterance; the result has the input's length and alignment."""
        upsampled = resample_poly(audio_16k.astype(np.float64), UPSAMPLE, 1) * INT16_SCALE
        total = len(upsampled) + DELAY
        frames = -(-total // FRAME)
        signal = np.zeros(frames * FRAME, dtype=np.float32)
        signal[: len(upsampled)] = upsampled
        out = np.empty_like(signal)
        state = self.lib.rnnoise_create(None)
        try:
            for start in range(0, len(signal), FRAME):
                frame_in = signal[start : start + FRAME].ctypes.data_as(_FLOATS)
                frame_out = out[start : start + FRAME].ctypes.data_as(_FLOATS)
                self.lib.rnnoise_process_frame(state, frame_out, frame_in)
        finally:
            self.lib.rnnoise_destroy(state)
        aligned = out[DELAY : DELAY + len(upsampled)] / INT16_SCALE
        return resample_poly(aligned.astype(np.float64), 1, UPSAMPLE)[: len(audio_16k)].astype(np.float32)
