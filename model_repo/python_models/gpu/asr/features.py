"""Log-mel features as NeMo's ``AudioToMelSpectrogramPreprocessor`` computes them for Parakeet (eval mode).

16 kHz audio -> pre-emphasis 0.97 -> centred STFT (n_fft 512, 25 ms Hann window, 10 ms hop, zero
padding) -> power spectrum -> 128 Slaney mel bands (0-8 kHz) -> log(x + 2^-24) -> per-band
normalisation over the utterance's frames (mean 0, std 1; std unbiased + 1e-5). Exported ASR
encoders take these features, not audio, so this is the pre-processing the encoder engine needs.
Dither is a training-time augmentation and is not applied.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
N_FFT = 512
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
N_MELS = 128
PREEMPHASIS = 0.97
LOG_GUARD = 2.0**-24
NORM_EPS = 1e-5


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular filters, Slaney area normalisation (librosa.filters.mel)."""
    fft_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
    widths = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2 : n_mels + 2] - mel_hz[:n_mels]))[:, None]
    return weights.astype(np.float32)


_FILTERS = mel_filterbank()
# torch.hann_window(400, periodic=False), zero-padded to n_fft and centred, as torch.stft does.
_WINDOW = np.pad(np.hanning(WIN_LENGTH), ((N_FFT - WIN_LENGTH) // 2, (N_FFT - WIN_LENGTH + 1) // 2))


def frames_for(samples: int) -> int:
    """Feature frames for ``samples`` of audio (centred STFT)."""
    return samples // HOP_LENGTH + 1


def log_mel(audio: np.ndarray) -> np.ndarray:
    """[128, frames] float32 normalised log-mel features of one utterance (16 kHz float PCM)."""
    audio = audio.astype(np.float64)
    emphasised = np.concatenate([audio[:1], audio[1:] - PREEMPHASIS * audio[:-1]])
    padded = np.pad(emphasised, N_FFT // 2)
    count = frames_for(len(audio))
    index = np.arange(N_FFT)[None, :] + HOP_LENGTH * np.arange(count)[:, None]
    spectrum = np.abs(np.fft.rfft(padded[index] * _WINDOW, n=N_FFT)) ** 2
    mel = np.log(spectrum @ _FILTERS.T.astype(np.float64) + LOG_GUARD).T  # [128, frames]
    mean = mel.mean(axis=1, keepdims=True)
    std = np.sqrt(((mel - mean) ** 2).sum(axis=1, keepdims=True) / max(count - 1, 1)) + NORM_EPS
    return ((mel - mean) / std).astype(np.float32)


def batch_features(utterances: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Features of several utterances padded to the longest: ([batch, 128, frames], lengths [batch])."""
    feats = [log_mel(u) for u in utterances]
    lengths = np.array([f.shape[1] for f in feats], dtype=np.int64)
    out = np.zeros((len(feats), N_MELS, int(lengths.max())), dtype=np.float32)
    for i, f in enumerate(feats):
        out[i, :, : f.shape[1]] = f
    return out, lengths
