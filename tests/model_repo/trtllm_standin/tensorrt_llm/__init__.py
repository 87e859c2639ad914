"""Stand-in for TensorRT-LLM's LLM API (see ../README.md): echoes the prompt it was given, decoded."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

RECORDED: dict[str, Any] = {}
# The version the stack pins (platform_spec.versions.TENSORRT_LLM_VERSION; tests/model_repo/test_serving_gpu_llm.py
# checks they agree), overridable to play another image.
__version__ = os.environ.get("TRTLLM_STANDIN_VERSION", "1.1.0")


@dataclass
class SamplingParams:
    max_tokens: int = 32
    temperature: float = 1.0
    top_k: int | None = None


@dataclass
class _Completion:
    text: str


@dataclass
class _Output:
    outputs: list[_Completion] = field(default_factory=list)


class _Generation:
    def __init__(self, text: str, pieces: int) -> None:
        self.text, self.pieces, self.aborted = text, pieces, False

    def abort(self) -> None:
        self.aborted = True

    def __aiter__(self):
        return self._stream()

    async def _stream(self):
        step = max(1, len(self.text) // self.pieces)
        for end in range(step, len(self.text) + step, step):
            if self.aborted:
                return
            await asyncio.sleep(0)
            yield _Output([_Completion(self.text[:end])])


class LLM:
    """Loads the checkpoint's tokenizer only (to decode what it is fed); it has no ``tokenizer`` attribute, so a
    serving model that relied on TensorRT-LLM's tokenizer wrapper fails here."""

    def __init__(self, model: str, **options: Any) -> None:
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(model)
        RECORDED["options"] = options

    def generate_async(self, inputs, sampling_params: SamplingParams, streaming: bool = False, lora_request=None):
        if not isinstance(inputs, list) or not all(isinstance(i, int) for i in inputs):
            raise TypeError("this stand-in expects token ids, as the serving model sends them")
        prompt = self._tokenizer.decode(inputs, skip_special_tokens=False)
        kv = RECORDED["options"].get("kv_cache_config")
        options = RECORDED["options"]
        facts = (
            f"kv_max_tokens={getattr(kv, 'max_tokens', None)},kv_dtype={getattr(kv, 'dtype', None)},"
            f"max_batch_size={options.get('max_batch_size')},max_num_tokens={options.get('max_num_tokens')}"
        )
        return _Generation(f"ECHO[{len(inputs)},{facts}]:{prompt}", pieces=4)

    def shutdown(self) -> None:
        return None
