"""A TensorRT engine's stand-in: a Python-backend model with the engine's exact bindings, computing in PyTorch.

Where TensorRT cannot run, the gpu target's speech repository serves this model in place of each ``model.plan``
(``repository.py`` puts it there under the engine's own config: names, dtypes, shapes, batching, instance group).
Like a TensorRT model on a GPU instance it computes on that GPU and returns its outputs **in GPU memory**
(DLPack), so the Python glue around it meets the same BLS behaviour as in production. The networks have the real
models' layer shapes (``standin_scale: full``: FastConformer-large 24 x 1024, the TDT prediction net and joint,
MiniLM-L6, FastPitch 6+6 x 384, HiFi-GAN V1 upsampling) with seeded random weights, so the GPU does the real
amount of work; ``tiny`` shrinks depth for a CPU run. Values are not speech: the joint is biased towards a
two-frame skip (a trained TDT emits about one token every two to three 80 ms frames) and FastPitch predicts six
frames a token, so decoding lengths, and the number of decoder calls, look like a real model's.

Not TensorRT: no engine build, no FP16 kernels' numerics; only the interface and the computation's size.
"""

from __future__ import annotations

import json

import numpy as np
import torch
import triton_python_backend_utils as pb_utils
from torch import nn

DEPTH = {"full": {"asr": 24, "embed": 6, "fastpitch": 6}, "tiny": {"asr": 2, "embed": 2, "fastpitch": 1}}
TDT_DURATIONS = 5
FRAMES_PER_TOKEN = 6
MAX_TOKEN_FRAMES = 75  # FastPitch's max_token_duration


def _encoder(d_model: int, heads: int, ff: int, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout=0.0, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class AsrEncoder(nn.Module):
    """audio_signal [B, 128, T], length [B] -> outputs [B, 1024, T/8], encoded_lengths [B] (8x subsampling)."""

    def __init__(self, scale: str) -> None:
        super().__init__()
        self.subsample = nn.Linear(128 * 8, 1024)
        self.layers = _encoder(1024, 8, 4096, DEPTH[scale]["asr"])

    def forward(self, audio_signal, length):
        b, f, t = audio_signal.shape
        frames = t // 8
        x = audio_signal[:, :, : frames * 8].transpose(1, 2).reshape(b, frames, f * 8)
        x = self.layers(self.subsample(x))
        return x.transpose(1, 2), torch.div(length, 8, rounding_mode="floor").clamp(max=frames)


class AsrDecoderJoint(nn.Module):
    """Parakeet-TDT's prediction network (embedding + 2-layer LSTM 640) and joint (-> 1024 + blank + durations)."""

    def __init__(self, scale: str, vocabulary: int = 1024) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocabulary + 1, 640)
        self.lstm = nn.LSTM(640, 640, num_layers=2)
        self.enc = nn.Linear(1024, 640)
        self.pred = nn.Linear(640, 640)
        self.out = nn.Linear(640, vocabulary + 1 + TDT_DURATIONS)
        bias = torch.zeros(vocabulary + 1 + TDT_DURATIONS)
        bias[vocabulary + 1 + 2] = 4.0  # skip two frames: a token every 160 ms, about a real model's rate
        self.register_buffer("bias", bias)

    def forward(self, encoder_outputs, targets, target_length, input_states_1, input_states_2):
        g, (h, c) = self.lstm(self.embed(targets.long()).transpose(0, 1), (input_states_1, input_states_2))
        joint = torch.relu(
            self.enc(encoder_outputs.transpose(1, 2))[:, :, None] + self.pred(g.transpose(0, 1))[:, None]
        )
        return self.out(joint) + self.bias, target_length, h, c


class EmbedEncoder(nn.Module):
    """MiniLM-L6 shape: input_ids/attention_mask/token_type_ids [B, T] -> last_hidden_state [B, T, 384]."""

    def __init__(self, scale: str) -> None:
        super().__init__()
        self.tokens = nn.Embedding(30522, 384)
        self.types = nn.Embedding(2, 384)
        self.layers = _encoder(384, 12, 1536, DEPTH[scale]["embed"])

    def forward(self, input_ids, attention_mask, token_type_ids):
        x = self.tokens(input_ids) + self.types(token_type_ids)
        return (self.layers(x, src_key_padding_mask=attention_mask == 0),)


class FastPitch(nn.Module):
    """text/pitch/pace [B, T] -> spect [B, 80, frames], num_frames [B], durations, log durations, pitch [B, T]."""

    def __init__(self, scale: str) -> None:
        super().__init__()
        self.symbols = nn.Embedding(256, 384)
        self.encoder = _encoder(384, 2, 1536, DEPTH[scale]["fastpitch"])
        self.decoder = _encoder(384, 2, 1536, DEPTH[scale]["fastpitch"])
        self.pitch = nn.Linear(384, 1)
        self.proj = nn.Linear(384, 80)

    def forward(self, text, pitch, pace):
        encoded = self.encoder(self.symbols(text.clamp(0, 255)))
        pitch_predicted = self.pitch(encoded).squeeze(-1) + pitch
        # (pace clamped: the warm-up request sends random data, as the real engine's would be fed)
        durations = torch.full(text.shape, float(FRAMES_PER_TOKEN), device=text.device) / pace.float().clamp(0.1, 10)
        repeats = durations.round().long().clamp(1, MAX_TOKEN_FRAMES)
        frames = repeats.sum(dim=1)
        expanded = [torch.repeat_interleave(encoded[i], repeats[i], dim=0) for i in range(text.shape[0])]
        x = nn.utils.rnn.pad_sequence(expanded, batch_first=True)
        spect = self.proj(self.decoder(x)).transpose(1, 2)
        return spect, frames, durations, torch.log1p(durations), pitch_predicted


class HifiGan(nn.Module):
    """HiFi-GAN V1 generator shape: spec [B, 80, frames] -> audio [B, 1, frames x 256]."""

    def __init__(self, scale: str) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(80, 512, 7, padding=3)]
        channels = 512
        for rate in (8, 8, 2, 2):
            layers += [
                nn.LeakyReLU(0.1),
                nn.ConvTranspose1d(channels, channels // 2, rate * 2, rate, padding=rate // 2),
            ]
            layers += [nn.LeakyReLU(0.1), nn.Conv1d(channels // 2, channels // 2, 3, padding=1)]
            channels //= 2
        layers += [nn.LeakyReLU(0.1), nn.Conv1d(channels, 1, 7, padding=3), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, spec):
        return (self.net(spec),)


NETWORKS = {
    "asr_encoder": AsrEncoder,
    "asr_decoder_joint": AsrDecoderJoint,
    "embed_encoder": EmbedEncoder,
    "tts_fastpitch": FastPitch,
    "tts_hifigan": HifiGan,
}
FLOAT_INPUTS = {"audio_signal", "encoder_outputs", "input_states_1", "input_states_2", "spec", "pitch", "pace"}
# Inputs whose batch sits in dimension 1 (the LSTM states) on the one unbatched engine.
STATE_INPUTS = {"input_states_1", "input_states_2"}


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        engine = params["standin_engine"]
        on_gpu = args["model_instance_kind"] == "GPU" and torch.cuda.is_available()
        self.device = torch.device(f"cuda:{args['model_instance_device_id']}" if on_gpu else "cpu")
        self.dtype = torch.float16 if on_gpu else torch.float32  # the engines are FP16 builds
        self.inputs = [i["name"] for i in config["input"]]
        # Each input's dynamic dimensions (batch excluded) -> (min, max) of the engine's optimization profile.
        profile = json.loads(params.get("standin_profile", "{}"))
        self.bounds = {
            i["name"]: [(axis, lo, hi) for axis, (lo, _, hi) in zip(
                [a for a, d in enumerate(i.get("reshape", {}).get("shape", i["dims"])) if int(d) == -1],
                profile.get(i["name"], []), strict=True)]
            for i in config["input"]
        }  # fmt: skip
        self.outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]]
        self.batched = int(config.get("max_batch_size", 0)) > 0
        # The server's own libraries (loaded first) bring an older cuDNN than this torch was built with; TensorRT
        # would not use cuDNN either: torch's native CUDA kernels run the LSTM and convolutions.
        torch.backends.cudnn.enabled = False
        torch.manual_seed(0)
        self.net = NETWORKS[engine](params.get("standin_scale", "full")).to(self.device, self.dtype).eval()

    def _tensor(self, request, name: str) -> torch.Tensor:
        value = torch.from_dlpack(pb_utils.get_input_tensor_by_name(request, name).to_dlpack()).to(self.device)
        return value.to(self.dtype) if name in FLOAT_INPUTS else value

    def _outside_profile(self, request) -> str | None:
        for name, bounds in self.bounds.items():
            shape = pb_utils.get_input_tensor_by_name(request, name).shape()
            dims = shape[1:] if self.batched else shape
            for axis, lo, hi in bounds:
                if not lo <= dims[axis] <= hi:
                    return (
                        f"input {name} dimension {axis} is {dims[axis]}, outside the optimization profile [{lo}, {hi}]"
                    )
        return None

    def execute(self, requests):
        errors = [self._outside_profile(r) for r in requests]
        valid = [r for r, e in zip(requests, errors, strict=True) if e is None]
        results = iter(self._run(valid) if valid else [])
        return [
            next(results) if e is None else pb_utils.InferenceResponse(error=pb_utils.TritonError(e)) for e in errors
        ]

    @torch.inference_mode()
    def _run(self, requests):
        # Triton's dynamic batcher hands over requests of equal shapes: run them as one batch, as TensorRT does.
        feeds = {name: [self._tensor(r, name) for r in requests] for name in self.inputs}
        sizes = [t.shape[0] for t in feeds[self.inputs[0]]] if self.batched else [None] * len(requests)
        if self.batched and len({tuple(t.shape[1:]) for t in feeds[self.inputs[0]]}) == 1:
            results = self.net(**{name: torch.cat(values) for name, values in feeds.items()})
            split = [torch.split(r, sizes) for r in results]
            per_request = [[part[i] for part in split] for i in range(len(requests))]
        else:
            per_request = [
                self.net(**{name: values[i] for name, values in feeds.items()}) for i in range(len(requests))
            ]
        return [self._response(values) for values in per_request]

    def _response(self, values) -> object:
        tensors = []
        for (name, dtype), value in zip(self.outputs, values, strict=True):
            value = value.to(getattr(torch, np.dtype(dtype).name)).contiguous()
            tensors.append(pb_utils.Tensor.from_dlpack(name, torch.utils.dlpack.to_dlpack(value)))
        return pb_utils.InferenceResponse(output_tensors=tensors)
