"""Stand-in for TensorRT-LLM's LLM API that generates with a random-weight Llama in PyTorch (see ../README.md)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .llmapi import KvCacheConfig

# The version the stack pins (platform_spec.versions.TENSORRT_LLM_VERSION), overridable to play another image.
__version__ = os.environ.get("TRTLLM_STANDIN_VERSION", "1.1.0")
BLOCK_TOKENS = 64  # TensorRT-LLM's KV block
STATS_FILE = "standin_stats.json"
FP8 = torch.float8_e4m3fn


@dataclass
class SamplingParams:
    max_tokens: int = 32
    temperature: float = 1.0
    top_k: int | None = None


@dataclass
class _Completion:
    text: str
    token_ids: list[int]


@dataclass
class _Output:
    outputs: list[_Completion]
    finished: bool = False


class _Matrix:
    """A linear layer's weight as the checkpoint stores it: FP8 with a per-tensor scale, or BF16."""

    def __init__(self, out_features: int, in_features: int, dtype: torch.dtype, device: torch.device, gen) -> None:
        weight = torch.randn(out_features, in_features, generator=gen, device=device, dtype=torch.bfloat16)
        self.weight = weight.to(dtype)
        self.scale = 1.0 / math.sqrt(in_features)  # unit-variance outputs, so 32 random layers stay finite

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.weight.to(torch.bfloat16).T) * self.scale

    @property
    def nbytes(self) -> int:
        return self.weight.numel() * self.weight.element_size()


class _Llama:
    """Llama's decoder: RMSNorm, grouped-query attention with rotary positions, SwiGLU MLP; the KV cache paged."""

    def __init__(self, config: dict, weight_dtype: torch.dtype, device: torch.device, seed: int) -> None:
        gen = torch.Generator(device=device).manual_seed(seed)
        hidden, self.heads = config["hidden_size"], config["num_attention_heads"]
        self.kv_heads = config.get("num_key_value_heads", self.heads)
        self.head_dim = config.get("head_dim") or hidden // self.heads
        self.eps = config.get("rms_norm_eps", 1e-5)
        mlp, vocab = config["intermediate_size"], config["vocab_size"]
        qkv = (self.heads + 2 * self.kv_heads) * self.head_dim
        self.embed = torch.randn(vocab, hidden, generator=gen, device=device, dtype=torch.bfloat16)
        self.layers = [
            {"qkv": _Matrix(qkv, hidden, weight_dtype, device, gen),
             "o": _Matrix(hidden, self.heads * self.head_dim, weight_dtype, device, gen),
             "gate_up": _Matrix(2 * mlp, hidden, weight_dtype, device, gen),
             "down": _Matrix(hidden, mlp, weight_dtype, device, gen)}
            for _ in range(config["num_hidden_layers"])
        ]  # fmt: skip
        self.lm_head = _Matrix(vocab, hidden, torch.bfloat16, device, gen)
        half = self.head_dim // 2
        theta = float(config.get("rope_theta", 10000.0))
        self.inv_freq = 1.0 / theta ** (torch.arange(half, device=device, dtype=torch.float32) / half)
        self.weight_bytes = (
            self.embed.numel() * 2
            + self.lm_head.nbytes
            + sum(m.nbytes for layer in self.layers for m in layer.values())
        )

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(torch.bfloat16)

    def _rope(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        angles = positions.float()[:, None] * self.inv_freq[None, :]  # [N, half]
        cos, sin = angles.cos()[:, None, :], angles.sin()[:, None, :]
        first, second = x.float().chunk(2, dim=-1)
        return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1).to(torch.bfloat16)

    def forward(self, tokens, positions, slots, keys, mask, pool) -> torch.Tensor:
        """``tokens``/``positions``/``slots`` [N] (the new tokens, their positions, their KV slots); ``keys`` [B, L]
        the KV slots each of the B queries' sequence attends to, ``mask`` [B, 1, Q, L]; returns logits of each
        sequence's last new token. Prefill: B=1, Q=N. Decode: B=N, Q=1."""
        batch, queries = mask.shape[0], mask.shape[2]
        x = self.embed[tokens]
        for layer, cache in zip(self.layers, pool, strict=True):
            q, k, v = layer["qkv"](self._norm(x)).split(
                [self.heads * self.head_dim, self.kv_heads * self.head_dim, self.kv_heads * self.head_dim], dim=-1
            )
            q = self._rope(q.reshape(-1, self.heads, self.head_dim), positions)
            k = self._rope(k.reshape(-1, self.kv_heads, self.head_dim), positions)
            cache[0, slots] = k.to(cache.dtype)
            cache[1, slots] = v.reshape(-1, self.kv_heads, self.head_dim).to(cache.dtype)
            past_k = cache[0, keys].to(torch.bfloat16).transpose(1, 2)  # [B, kv_heads, L, dim]
            past_v = cache[1, keys].to(torch.bfloat16).transpose(1, 2)
            q = q.reshape(batch, queries, self.heads, self.head_dim).transpose(1, 2)
            attended = F.scaled_dot_product_attention(q, past_k, past_v, attn_mask=mask, enable_gqa=True)
            x = x + layer["o"](attended.transpose(1, 2).reshape(-1, self.heads * self.head_dim))
            gate, up = layer["gate_up"](self._norm(x)).chunk(2, dim=-1)
            x = x + layer["down"](F.silu(gate) * up)
        last = x.reshape(batch, queries, -1)[:, -1]
        return self.lm_head(self._norm(last)).float()


@dataclass
class _Request:
    tokens: list[int]
    sampling: SamplingParams
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue
    generated: list[int] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)
    slots: torch.Tensor | None = None
    aborted: bool = False


class _Generation:
    def __init__(self, engine: _Engine, tokens: list[int], sampling: SamplingParams) -> None:
        self.engine, self.tokens, self.sampling = engine, tokens, sampling
        self.request: _Request | None = None

    def abort(self) -> None:
        if self.request is not None:
            self.request.aborted = True

    def __aiter__(self):
        return self._stream()

    async def _stream(self):
        self.request = _Request(self.tokens, self.sampling, asyncio.get_running_loop(), asyncio.Queue())
        self.engine.submit(self.request)
        while True:
            item = await self.request.queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.finished:
                return


class _Engine:
    """In-flight batching over one paged KV pool: admit while whole-sequence blocks are free, prefill each newcomer,
    then one decode step for every active request."""

    def __init__(self, model: _Llama, pool: list[torch.Tensor], blocks: int, options: dict, tokenizer, stats: Path):
        self.model, self.pool, self.tokenizer, self.stats = model, pool, tokenizer, stats
        self.free = list(range(blocks))
        self.blocks = blocks
        self.max_batch = int(options.get("max_batch_size") or 64)
        self.waiting: list[_Request] = []
        self.active: list[_Request] = []
        self.wake = threading.Condition()
        self.stopped = False
        self.done = 0
        self.aborted = 0  # requests whose caller aborted them before their last token
        self.device = pool[0].device
        printable = [
            i for i in range(len(tokenizer)) if len(t := tokenizer.decode([i])) == 1 and t.isascii() and t.isprintable()
        ]
        self.allowed = torch.tensor(printable, device=self.device)
        self.thread = threading.Thread(target=self._run, name="trtllm-standin", daemon=True)
        self.thread.start()

    def submit(self, request: _Request) -> None:
        need = math.ceil((len(request.tokens) + request.sampling.max_tokens) / BLOCK_TOKENS)
        if need > self.blocks:
            raise ValueError(f"the request needs {need} KV blocks; the cache has {self.blocks} in all")
        with self.wake:
            self.waiting.append(request)
            self.wake.notify()

    def shutdown(self) -> None:
        with self.wake:
            self.stopped = True
            self.wake.notify()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self.wake:
                while not self.stopped and not self.waiting and not self.active:
                    self.wake.wait()
                if self.stopped:
                    return
                admitted = self._admit()
            try:
                with torch.inference_mode():
                    for request in admitted:
                        self._prefill(request)
                    if self.active:
                        self._decode()
            except BaseException as exc:  # noqa: BLE001 - every stream in flight ends with the error
                for request in self.active:
                    request.loop.call_soon_threadsafe(request.queue.put_nowait, exc)
                    self.free.extend(request.blocks)
                self.active = []

    def _admit(self) -> list[_Request]:
        admitted = []
        while self.waiting and len(self.active) < self.max_batch:
            request = self.waiting[0]
            need = math.ceil((len(request.tokens) + request.sampling.max_tokens) / BLOCK_TOKENS)
            if need > len(self.free):
                break  # no eviction: it waits for blocks, as the guaranteed-no-evict scheduler does
            self.waiting.pop(0)
            request.blocks = [self.free.pop() for _ in range(need)]
            blocks = torch.tensor(request.blocks, device=self.device)
            request.slots = (blocks[:, None] * BLOCK_TOKENS + torch.arange(BLOCK_TOKENS, device=self.device)).flatten()
            self.active.append(request)
            admitted.append(request)
        return admitted

    def _prefill(self, request: _Request) -> None:
        n = len(request.tokens)
        tokens = torch.tensor(request.tokens, device=self.device)
        positions = torch.arange(n, device=self.device)
        mask = torch.ones(n, n, dtype=torch.bool, device=self.device).tril()[None, None]
        logits = self.model.forward(tokens, positions, request.slots[:n], request.slots[:n][None], mask, self.pool)
        self._emit([request], logits)

    def _decode(self) -> None:
        live = [r for r in self.active if not r.aborted]
        self._finish([r for r in self.active if r.aborted])
        if not live:
            return
        lengths = [len(r.tokens) + len(r.generated) for r in live]  # the new token's position is length - 1
        longest = max(lengths)
        # Each row attends to its own slots; the padding repeats its first slot (written, so finite: the pool's
        # unwritten memory may hold NaN, and a masked NaN still poisons the attention's weighted sum).
        keys = torch.stack(
            [F.pad(r.slots[:n], (0, longest - n), value=int(r.slots[0])) for r, n in zip(live, lengths, strict=True)]
        )
        mask = torch.arange(longest, device=self.device)[None, :] < torch.tensor(lengths, device=self.device)[:, None]
        positions = torch.tensor([n - 1 for n in lengths], device=self.device)
        tokens = torch.tensor([r.generated[-1] for r in live], device=self.device)
        slots = keys[torch.arange(len(live), device=self.device), positions]
        logits = self.model.forward(tokens, positions, slots, keys, mask[:, None, None, :], self.pool)
        self._emit(live, logits)

    def _emit(self, requests: list[_Request], logits: torch.Tensor) -> None:
        logits = logits[:, self.allowed]
        chosen = []
        for row, request in zip(logits, requests, strict=True):
            temperature = request.sampling.temperature
            if request.sampling.top_k == 1 or temperature <= 0:
                chosen.append(int(row.argmax()))
            else:
                chosen.append(int(torch.multinomial(torch.softmax(row / temperature, -1), 1)))
        outputs, finished = [], []
        for index, request in zip(chosen, requests, strict=True):
            request.generated.append(int(self.allowed[index]))
            done = len(request.generated) >= request.sampling.max_tokens
            text = self.tokenizer.decode(request.generated, clean_up_tokenization_spaces=False)
            outputs.append((request, _Output([_Completion(text, list(request.generated))], finished=done)))
            if done:
                finished.append(request)
        # Finished requests are counted (and the stats written) before their last output goes out: a caller who has
        # its final response then reads stats that include it.
        self._finish(finished)
        for request, output in outputs:
            request.loop.call_soon_threadsafe(request.queue.put_nowait, output)

    def _finish(self, requests: list[_Request]) -> None:
        for request in requests:
            self.active.remove(request)
            self.free.extend(request.blocks)
            if request.aborted:
                request.loop.call_soon_threadsafe(request.queue.put_nowait, _Output([], finished=True))
        if requests:
            self.done += len(requests)
            self.aborted += sum(r.aborted for r in requests)
            self._write_stats()

    def _write_stats(self) -> None:
        cuda = self.device.type == "cuda"
        stats = {
            "device": torch.cuda.get_device_name(self.device) if cuda else "cpu",
            "weights_bytes": self.model.weight_bytes,
            "kv_cache_bytes": sum(c.numel() * c.element_size() for c in self.pool),
            "kv_cache_tokens": self.blocks * BLOCK_TOKENS,
            "kv_dtype": str(self.pool[0].dtype).removeprefix("torch."),
            "peak_reserved_bytes": torch.cuda.max_memory_reserved(self.device) if cuda else None,
            "peak_allocated_bytes": torch.cuda.max_memory_allocated(self.device) if cuda else None,
            "requests_done": self.done,
            "requests_aborted": self.aborted,
        }
        partial = self.stats.with_suffix(".tmp")
        partial.write_text(json.dumps(stats, indent=2))
        os.replace(partial, self.stats)


class LLM:
    """``LLM(model=<checkpoint dir>, kv_cache_config=KvCacheConfig(...), max_batch_size=..., ...)``."""

    def __init__(self, model: str, kv_cache_config: KvCacheConfig | None = None, **options: Any) -> None:
        from transformers import AutoTokenizer

        checkpoint = Path(model)
        config = json.loads((checkpoint / "config.json").read_text())
        quant_file = checkpoint / "hf_quant_config.json"
        quant = json.loads(quant_file.read_text()).get("quantization", {}) if quant_file.is_file() else {}
        fp8 = quant.get("quant_algo") == "FP8"
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
        llama = _Llama(config, FP8 if fp8 else torch.bfloat16, device, seed=int(config.get("standin_seed", 0)))
        kv = kv_cache_config or KvCacheConfig()
        kv_fp8 = kv.dtype == "fp8" or (kv.dtype == "auto" and quant.get("kv_cache_quant_algo") == "FP8")
        kv_dtype = FP8 if kv_fp8 else torch.bfloat16
        per_token = 2 * config["num_hidden_layers"] * llama.kv_heads * llama.head_dim * (1 if kv_fp8 else 2)
        if kv.max_tokens is not None:
            tokens = kv.max_tokens
        elif device.type == "cuda":  # TensorRT-LLM's rule without a budget: a fraction of the free memory
            tokens = int(torch.cuda.mem_get_info(device)[0] * kv.free_gpu_memory_fraction) // per_token
        else:
            raise ValueError("KvCacheConfig.max_tokens is required on a CPU")
        blocks = tokens // BLOCK_TOKENS
        # One tensor per layer, [K/V, slots, KV heads, head dim], allocated now: the memory is the model's from start.
        shape = (2, blocks * BLOCK_TOKENS, llama.kv_heads, llama.head_dim)
        pool = [torch.empty(shape, dtype=kv_dtype, device=device) for _ in range(config["num_hidden_layers"])]
        self._engine = _Engine(llama, pool, blocks, options, tokenizer, checkpoint.parent / STATS_FILE)
        self._engine._write_stats()

    def generate_async(self, inputs, sampling_params: SamplingParams, streaming: bool = False, lora_request=None):
        if not isinstance(inputs, list) or not all(isinstance(i, int) for i in inputs):
            raise TypeError("this stand-in expects token ids, as the serving model sends them")
        if lora_request is not None:  # repository.py places no adapters: a request for one is a wiring error
            raise ValueError(f"LoRA adapter {lora_request!r} requested, but this stand-in was given none")
        return _Generation(self._engine, inputs, sampling_params)

    def shutdown(self) -> None:
        self._engine.shutdown()
