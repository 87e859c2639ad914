"""The LLM pools' GPU memory plan (platform_spec.llm_memory): the arithmetic, both stacks fitting with the plan in
the stack outputs, and a stack whose LLMs cannot share their GPU failing before any resource, with the numbers."""

from __future__ import annotations

import pytest

from platform_spec.llm_memory import GIB, LLAMA_3_1_8B, model_memory, plan_pool
from tests.pulumi_harness import run_stack


def test_kv_cache_and_weight_arithmetic_for_llama_3_1_8b():
    # 2 (K and V) x 32 layers x 8 KV heads x 128 dims: 64 KiB per token in FP8, 128 KiB in BF16.
    assert LLAMA_3_1_8B.kv_bytes_per_token("fp8") == 64 * 1024
    assert LLAMA_3_1_8B.kv_bytes_per_token("bf16") == 128 * 1024
    fp8 = model_memory("llm_chat", "fp8", 131_072)
    assert fp8.kv_dtype == "fp8" and fp8.kv_gib == pytest.approx(8.0)
    assert fp8.weights_gib == pytest.approx(8.03e9 / GIB)
    bf16 = model_memory("llm_chat", "bf16", 131_072)
    assert bf16.kv_gib == pytest.approx(16.0) and bf16.weights_gib == pytest.approx(2 * fp8.weights_gib)
    pair = plan_pool("llm", "l4", [("llm_chat", "fp8", 131_072), ("llm_support", "fp8", 131_072)])
    assert not pair.fits and pair.total_gib > pair.usable_gib  # 35 GiB on a 24 GiB L4


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_both_stacks_fit_and_publish_the_plan(stack):
    run = run_stack(stack)
    run.raise_error()
    plan = run.outputs["llmMemoryPlan"]["llm"]
    assert set(plan["models"]) == {"llm_chat", "llm_support"}
    assert plan["totalGib"] <= plan["usableGib"]
    assert all(m["kvDtype"] == "fp8" and m["kvCacheTokens"] == 131_072 for m in plan["models"].values())


def test_llms_that_cannot_share_their_gpu_fail_before_any_resource():
    bf16 = {"llm_chat": {"precision": "bf16"}, "llm_support": {"precision": "bf16"}}
    run = run_stack("dev", overrides={"triton-platform:models": bf16})
    assert run.error is not None and run.registrations == []
    message = str(run.error)
    assert "LLM models do not fit their GPU" in message
    assert "GPU pool 'llm' (l40s, 48 GiB, 44.2 GiB usable)" in message
    assert "llm_chat: 15.0 GiB bf16 weights + 16.0 GiB KV cache (131072 tokens in bf16)" in message
    assert "together 65.9 GiB" in message and "llmVariants: lora" in message
