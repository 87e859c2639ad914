"""Speech recognition in PyTorch on the instance's device: a FastConformer-CTC encoder, random weights.

Inputs ``AUDIO`` (16 kHz mono float32) and ``SAMPLE_RATE``; output ``TRANSCRIPT``: the public interface of
the catalog's ``asr`` model. The network follows the production encoder's design (Parakeet's
FastConformer): log-mel features (``mels`` bins, 10 ms hop) computed on the device, 8x convolutional
subsampling, ``layers`` Conformer blocks (half-step feed-forward, self-attention, depthwise convolution
module, half-step feed-forward) of width ``hidden`` with ``heads`` heads, and a CTC head over characters.
The defaults (1024 wide, 24 blocks, 4096 feed-forward) make about 0.6 B parameters, the production
scale. Weights are seeded random (``seed``), fp16 on a GPU instance, fp32 on a CPU one. Written with
``torch.nn`` alone, so it runs wherever PyTorch does.

A dynamic batch is normalised per utterance, padded to the longest (lengths masked in attention), encoded
in one forward pass and greedily CTC-decoded.
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
import triton_python_backend_utils as pb_utils
from torch import nn

VOCAB = ["<blank>", "|", "'", *"abcdefghijklmnopqrstuvwxyz"]
SAMPLE_RATE = 16_000
N_FFT, HOP, WINDOW = 512, 160, 400
SUBSAMPLING = 8


def mel_filterbank(mels: int, n_fft: int = N_FFT, rate: int = SAMPLE_RATE) -> np.ndarray:
    """[mels, n_fft // 2 + 1] triangular filters on the HTK mel scale."""

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(rate / 2), mels + 2))
    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (center - lower)
    falling = (upper - bins[None]) / (upper - center)
    return np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32)


class FeedForward(nn.Module):
    def __init__(self, d: int, ffn: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, ffn), nn.SiLU(), nn.Linear(ffn, d))

    def forward(self, x):
        return self.net(x)


class ConvModule(nn.Module):
    def __init__(self, d: int, kernel: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.pointwise_in = nn.Conv1d(d, 2 * d, 1)
        self.depthwise = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d)
        self.batch_norm = nn.BatchNorm1d(d)
        self.pointwise_out = nn.Conv1d(d, d, 1)

    def forward(self, x, pad_mask):
        y = self.norm(x).masked_fill(pad_mask[..., None], 0.0).transpose(1, 2)
        y = nn.functional.glu(self.pointwise_in(y), dim=1)
        y = nn.functional.silu(self.batch_norm(self.depthwise(y)))
        return self.pointwise_out(y).transpose(1, 2)


class ConformerBlock(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, kernel: int) -> None:
        super().__init__()
        self.ff1, self.ff2 = FeedForward(d, ffn), FeedForward(d, ffn)
        self.attn_norm = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.conv = ConvModule(d, kernel)
        self.out_norm = nn.LayerNorm(d)

    def forward(self, x, pad_mask):
        x = x + 0.5 * self.ff1(x)
        y = self.attn_norm(x)
        x = x + self.attn(y, y, y, key_padding_mask=pad_mask, need_weights=False)[0]
        x = x + self.conv(x, pad_mask)
        x = x + 0.5 * self.ff2(x)
        return self.out_norm(x)


class ConformerCTC(nn.Module):
    def __init__(self, mels: int, d: int, layers: int, heads: int, ffn: int, channels: int, kernel: int = 9):
        super().__init__()
        self.register_buffer("mel", torch.from_numpy(mel_filterbank(mels)))
        self.register_buffer("window", torch.hann_window(WINDOW))
        convs = []
        for i in range(int(math.log2(SUBSAMPLING))):  # three stride-2 convolutions: 8x fewer frames
            convs += [nn.Conv2d(1 if i == 0 else channels, channels, 3, stride=2, padding=1), nn.SiLU()]
        self.subsample = nn.Sequential(*convs)
        self.project = nn.Linear(channels * math.ceil(mels / SUBSAMPLING), d)
        self.blocks = nn.ModuleList(ConformerBlock(d, heads, ffn, kernel) for _ in range(layers))
        self.head = nn.Linear(d, len(VOCAB))

    def features(self, audio):
        spec = torch.stft(audio.float(), N_FFT, HOP, WINDOW, self.window, return_complex=True).abs() ** 2
        return torch.log(torch.matmul(self.mel, spec) + 1e-6)  # [batch, mels, frames]

    def forward(self, audio, lengths):
        feats = self.features(audio).to(self.head.weight.dtype)
        x = self.subsample(feats.transpose(1, 2)[:, None])  # [batch, channels, frames/8, mels/8]
        x = self.project(x.permute(0, 2, 1, 3).flatten(2))
        frames = torch.div(lengths, HOP * SUBSAMPLING, rounding_mode="floor") + 1
        pad_mask = torch.arange(x.shape[1], device=x.device)[None] >= frames[:, None]
        for block in self.blocks:
            x = block(x, pad_mask)
        return self.head(x), frames


def _device(args) -> torch.device:
    if args.get("model_instance_kind") == "GPU":
        return torch.device(f"cuda:{args['model_instance_device_id']}")
    return torch.device("cpu")


class TritonPythonModel:
    def initialize(self, args):
        self.config = json.loads(args["model_config"])
        p = {k: v["string_value"] for k, v in self.config.get("parameters", {}).items()}
        self.device = _device(args)
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        torch.manual_seed(int(p.get("seed", "0")))
        hidden = int(p.get("hidden", "1024"))
        with torch.device(self.device):
            model = ConformerCTC(
                mels=int(p.get("mels", "128")),
                d=hidden,
                layers=int(p.get("layers", "24")),
                heads=int(p.get("heads", "8")),
                ffn=int(p.get("ffn", str(4 * hidden))),
                channels=int(p.get("conv_dim", "256")),
            )
        # from_numpy buffers (the filterbank) are created on the CPU whatever the device context: move all.
        self.model = model.to(device=self.device, dtype=dtype).eval()
        self.model.mel.data = self.model.mel.data.float()  # features stay fp32 (log of small powers)
        self.model.window.data = self.model.window.data.float()
        self.batched = int(self.config.get("max_batch_size", 0)) > 0

    def execute(self, requests):
        rows, counts, responses = [], [], [None] * len(requests)
        for i, request in enumerate(requests):
            audio = pb_utils.get_input_tensor_by_name(request, "AUDIO").as_numpy().astype(np.float32)
            rate = pb_utils.get_input_tensor_by_name(request, "SAMPLE_RATE").as_numpy().reshape(-1)
            if not self.batched:
                audio = audio[None, :]
            if np.any(rate != SAMPLE_RATE):
                error = pb_utils.TritonError(f"SAMPLE_RATE must be {SAMPLE_RATE}, got {rate.tolist()}")
                responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=error)
                counts.append(0)
                continue
            rows.extend(audio)
            counts.append(len(audio))
        texts = self._transcribe(rows) if rows else []
        at = 0
        for i, count in enumerate(counts):
            if responses[i] is not None:
                continue
            out = np.array([[t.encode()] for t in texts[at : at + count]], dtype=np.object_)
            at += count
            responses[i] = pb_utils.InferenceResponse([pb_utils.Tensor("TRANSCRIPT", out if self.batched else out[0])])
        return responses

    def _transcribe(self, rows: list[np.ndarray]) -> list[str]:
        lengths = [len(r) for r in rows]
        batch = np.zeros((len(rows), max(lengths)), dtype=np.float32)
        for i, row in enumerate(rows):
            batch[i, : len(row)] = (row - row.mean()) / np.sqrt(row.var() + 1e-7)
        # DLPack instead of from_numpy()/.numpy(): independent of the numpy ABI torch was built against.
        audio = torch.from_dlpack(batch).to(self.device)
        with torch.inference_mode():
            logits, frames = self.model(audio, torch.tensor(lengths, device=self.device))
            ids = np.from_dlpack(logits.argmax(-1).cpu())
            frames = np.from_dlpack(frames.cpu())
        return [_greedy_ctc(row[:n]) for row, n in zip(ids, frames, strict=True)]


def _greedy_ctc(ids: np.ndarray) -> str:
    out, previous = [], -1
    for token in ids:
        if token != previous and token != 0:
            out.append(" " if token == 1 else VOCAB[token])
        previous = token
    return " ".join("".join(out).split())
