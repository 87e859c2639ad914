"""Stand-in for ``tensorrt_llm.llmapi`` (see ../README.md): the KV cache options the serving model passes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class KvCacheConfig:
    free_gpu_memory_fraction: float = 0.9
    max_tokens: int | None = None
    dtype: str = "auto"
