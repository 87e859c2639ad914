"""GPU memory plan of an LLM pool: what each model placed on one GPU takes, and whether they fit together.

Per model (one TensorRT-LLM ``LLM`` per Triton instance, each pinned to the pool's GPU 0):
- weights: parameters x bytes per parameter of the checkpoint's precision (FP8: 1, BF16: 2), except the token
  embeddings and the LM head, which ModelOpt's FP8 checkpoints keep in BF16 (Llama-3.1-8B FP8: 8.5 GiB, not 7.5);
- KV cache: its token budget (passed to TensorRT-LLM as ``KvCacheConfig.max_tokens``, which caps the cache at the
  smaller of that and the free-memory fraction) x bytes per token, where a token's K and V take
  2 x layers x KV heads x head dim x bytes of the KV dtype (FP8 where the checkpoint is FP8, else BF16). The plan
  *derives* the budget: what the GPU's usable memory leaves after every model's weights and runtime, shared so that
  each model gets the same number of tokens, capped at the most a model can use (``kv_cache_max_tokens``) and
  rounded down to whole KV blocks; the models fit when each gets at least the fewest it needs (one full-length
  sequence, ``max_seq_len``);
- runtime: activations for ``max_num_tokens``, CUDA graphs, the CUDA context and cuBLAS workspaces, an estimate
  (``RUNTIME_GIB``) from TensorRT-LLM's PyTorch backend on one GPU.
The models together must stay within ``USABLE_SHARE`` of the GPU's memory (fragmentation, the allocator's cache).
These are planning estimates, not measurements: the pool's memory is what the GPU reports at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from platform_spec.gpus import GPU_SKUS

GIB = 2**30
USABLE_SHARE = 0.92
RUNTIME_GIB = 2.0
KV_BLOCK_TOKENS = 64  # TensorRT-LLM's paged KV cache allocates whole blocks of tokens
BYTES = {"fp8": 1, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class LlmShape:
    name: str
    parameters: float
    layers: int
    kv_heads: int
    head_dim: int
    unquantized_parameters: float  # token embeddings + LM head: BF16 in an FP8 checkpoint

    def weight_bytes(self, precision: str) -> float:
        return (self.parameters - self.unquantized_parameters) * BYTES[precision] + self.unquantized_parameters * 2

    def kv_bytes_per_token(self, kv_dtype: str) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * BYTES[kv_dtype]


# Llama 3.1 8B (both variants the platform serves): 8.03 B parameters, 32 layers, 8 KV heads of 128 dims (GQA); its
# untied embeddings and LM head are 2 x 128,256 x 4,096 of them.
LLAMA_3_1_8B = LlmShape("Llama-3.1-8B", 8.03e9, 32, 8, 128, unquantized_parameters=2 * 128_256 * 4_096)


@dataclass(frozen=True)
class ModelMemory:
    model: str
    precision: str
    kv_dtype: str
    kv_tokens: int
    weights_gib: float
    kv_gib: float
    runtime_gib: float

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_gib + self.runtime_gib

    def describe(self) -> str:
        return (f"{self.model}: {self.weights_gib:.1f} GiB {self.precision} weights + {self.kv_gib:.1f} GiB KV cache "
                f"({self.kv_tokens} tokens in {self.kv_dtype}) + {self.runtime_gib:.1f} GiB runtime "
                f"= {self.total_gib:.1f} GiB")  # fmt: skip


def model_memory(model: str, precision: str, kv_tokens: int, shape: LlmShape = LLAMA_3_1_8B) -> ModelMemory:
    kv_dtype = "fp8" if precision == "fp8" else "bf16"
    return ModelMemory(
        model=model,
        precision=precision,
        kv_dtype=kv_dtype,
        kv_tokens=kv_tokens,
        weights_gib=shape.weight_bytes(precision) / GIB,
        kv_gib=kv_tokens * shape.kv_bytes_per_token(kv_dtype) / GIB,
        runtime_gib=RUNTIME_GIB,
    )


@dataclass(frozen=True)
class PoolMemoryPlan:
    pool: str
    gpu_sku: str
    gpu_gib: float
    models: tuple[ModelMemory, ...]

    @property
    def usable_gib(self) -> float:
        return self.gpu_gib * USABLE_SHARE

    @property
    def total_gib(self) -> float:
        return sum(m.total_gib for m in self.models)

    @property
    def fits(self) -> bool:
        return self.total_gib <= self.usable_gib

    def describe(self) -> str:
        lines = "; ".join(m.describe() for m in self.models)
        return (f"GPU pool {self.pool!r} ({self.gpu_sku}, {self.gpu_gib:g} GiB, {self.usable_gib:.1f} GiB usable): "
                f"{lines}; together {self.total_gib:.1f} GiB")  # fmt: skip

    def to_output(self) -> dict[str, object]:
        """The plan as the stack output ``llmMemoryPlan`` shows it (GiB, one decimal)."""
        return {
            "gpuSku": self.gpu_sku,
            "gpuGib": self.gpu_gib,
            "usableGib": round(self.usable_gib, 1),
            "totalGib": round(self.total_gib, 1),
            "models": {
                m.model: {
                    "weightsGib": round(m.weights_gib, 1),
                    "kvCacheGib": round(m.kv_gib, 1),
                    "kvCacheTokens": m.kv_tokens,
                    "kvDtype": m.kv_dtype,
                    "runtimeGib": m.runtime_gib,
                }
                for m in self.models
            },  # fmt: skip
        }


def plan_pool(pool: str, gpu_sku: str, models: Sequence[tuple[str, str, int, int]]) -> PoolMemoryPlan:
    """``models``: (name, precision, fewest KV tokens it needs, most it can use) of each LLM instance placed on the
    pool's GPU. Each model's budget is derived (module docstring); where even the fewest do not fit, the plan shows
    every model at its fewest, and ``fits`` is false."""
    sku = GPU_SKUS[gpu_sku]
    usable = sku.memory_gib * USABLE_SHARE * GIB
    empty = [model_memory(name, precision, 0) for name, precision, _, _ in models]
    fixed = sum(m.weights_gib + m.runtime_gib for m in empty) * GIB
    per_token = sum(LLAMA_3_1_8B.kv_bytes_per_token(m.kv_dtype) for m in empty)
    share = int(max(0.0, usable - fixed) // per_token) // KV_BLOCK_TOKENS * KV_BLOCK_TOKENS
    enough = all(share >= fewest for _, _, fewest, _ in models)
    planned = tuple(
        model_memory(name, precision, min(most, share) if enough else fewest)
        for name, precision, fewest, most in models
    )
    return PoolMemoryPlan(pool, gpu_sku, float(sku.memory_gib), planned)
