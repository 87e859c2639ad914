"""The LLM pools' GPU memory plan (platform_spec.llm_memory): the arithmetic, the KV budgets it derives for each
model (and that the served config carries them), both stacks fitting with the plan in the stack outputs, and a stack
whose LLMs cannot share their GPU even at the fewest tokens failing before any resource, with the numbers."""

from __future__ import annotations

import dataclasses

import pytest

from platform_spec.llm_memory import GIB, LLAMA_3_1_8B, model_memory, plan_pool
from tests.pulumi_harness import run_stack


def test_kv_cache_and_weight_arithmetic_for_llama_3_1_8b():
    # 2 (K and V) x 32 layers x 8 KV heads x 128 dims: 64 KiB per token in FP8, 128 KiB in BF16.
    assert LLAMA_3_1_8B.kv_bytes_per_token("fp8") == 64 * 1024
    assert LLAMA_3_1_8B.kv_bytes_per_token("bf16") == 128 * 1024
    fp8 = model_memory("llm_chat", "fp8", 131_072)
    assert fp8.kv_dtype == "fp8" and fp8.kv_gib == pytest.approx(8.0)
    # FP8 linear layers (6.98 B parameters, 1 byte) + BF16 embeddings and LM head (2 x 128,256 x 4,096, 2 bytes): the
    # ~8.5 GB an FP8 Llama-3.1-8B checkpoint holds.
    assert fp8.weights_gib == pytest.approx((8.03e9 - 1_050_673_152 + 2 * 1_050_673_152) / GIB)
    assert 8.4 < fp8.weights_gib < 8.5
    bf16 = model_memory("llm_chat", "bf16", 131_072)
    assert bf16.kv_gib == pytest.approx(16.0) and bf16.weights_gib == pytest.approx(2 * 8.03e9 / GIB)



def test_the_plan_derives_equal_kv_budgets_from_what_the_gpu_leaves():
    # L4, 24 GiB x 0.92 = 22.08 GiB usable; two FP8 8B models: 2 x (8.46 weights + 2.0 runtime) = 20.92 GiB; the
    # 1.16 GiB left hold 1.16 GiB / (2 x 64 KiB) = 9,4xx tokens each, in whole 64-token blocks.
    pair = plan_pool("llm", "l4", [("llm_chat", "fp8", 8_192, 131_072), ("llm_support", "fp8", 8_192, 131_072)])
    usable, fixed = 24 * 0.92 * GIB, 2 * (8.03e9 + 1_050_673_152 + 2.0 * GIB)
    expected = int((usable - fixed) // (2 * 64 * 1024)) // 64 * 64
    assert [m.kv_tokens for m in pair.models] == [expected, expected] and 8_192 <= expected < 131_072
    assert pair.fits and pair.usable_gib - pair.total_gib < 2 * 64 * 64 * 1024 / GIB  # less than a block each left
    # A GPU with room to spare: each model gets the most it can use.
    roomy = plan_pool("llm", "h100", [("llm_chat", "fp8", 8_192, 131_072), ("llm_support", "fp8", 8_192, 131_072)])
    assert [m.kv_tokens for m in roomy.models] == [131_072, 131_072]
    # Not even one full-length sequence each: the plan shows them at their fewest and does not fit.
    tight = plan_pool("llm", "l4", [("llm_chat", "bf16", 8_192, 131_072), ("llm_support", "bf16", 8_192, 131_072)])
    assert not tight.fits and [m.kv_tokens for m in tight.models] == [8_192, 8_192]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_both_stacks_fit_and_publish_the_plan(stack):
    run = run_stack(stack)
    run.raise_error()
    plan = run.outputs["llmMemoryPlan"]["llm"]
    assert set(plan["models"]) == {"llm_chat", "llm_support"}
    assert plan["totalGib"] <= plan["usableGib"]
    assert all(m["kvDtype"] == "fp8" and m["kvCacheTokens"] == 131_072 for m in plan["models"].values())


BF16 = {"llm_chat": {"precision": "bf16"}, "llm_support": {"precision": "bf16"}}


def test_bf16_models_share_the_l40s_with_smaller_derived_kv_budgets_that_the_served_config_carries():
    from infra.stack_plan import plan_llm_memory, with_kv_budgets
    from model_repo import catalog
    from platform_spec.settings import load_stack_settings

    run = run_stack("dev", overrides={"triton-platform:models": BF16})
    run.raise_error()
    plan = run.outputs["llmMemoryPlan"]["llm"]
    tokens = {m["kvCacheTokens"] for m in plan["models"].values()}
    assert len(tokens) == 1 and 8_192 <= tokens.pop() < 131_072 and plan["totalGib"] <= plan["usableGib"]
    settings = load_stack_settings("dev")
    served = [dataclasses.replace(m, precision_selected="bf16") if m.role == "llm" else m for m in catalog.select({})]
    plans = plan_llm_memory(settings, served)
    derived = with_kv_budgets(served, plans)
    budget = {m.name: m.target("gpu").parameters["kv_cache_max_tokens"] for m in derived if m.role == "llm"}
    assert budget == {m.model: str(m.kv_tokens) for m in plans[0].models}


def test_llms_that_cannot_share_their_gpu_even_at_the_fewest_tokens_fail_before_any_resource():
    overrides = {"triton-platform:models": BF16, "triton-platform:gpuPools[0].gpuSku": "l4",
                 "triton-platform:gpuPools[0].instanceTypes": ["g6.4xlarge"]}  # fmt: skip
    run = run_stack("dev", overrides=overrides)
    assert run.error is not None and run.registrations == []
    message = str(run.error)
    assert "LLM models do not fit their GPU" in message
    assert "GPU pool 'llm' (l4, 24 GiB, 22.1 GiB usable)" in message
    assert "llm_chat: 15.0 GiB bf16 weights + 1.0 GiB KV cache (8192 tokens in bf16)" in message
    assert "even with the fewest KV tokens" in message and "llmVariants: lora" in message
