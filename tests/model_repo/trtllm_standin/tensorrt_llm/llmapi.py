"""Stand-in for ``tensorrt_llm.llmapi`` (see ../README.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class KvCacheConfig:
    free_gpu_memory_fraction: float = 0.9
    max_tokens: int | None = None
    dtype: str = "auto"
