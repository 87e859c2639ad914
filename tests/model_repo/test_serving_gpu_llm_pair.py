"""Both Llama variants of the LLM pool in one server, as the stack places them on one GPU, through the gpu LLM
model's unchanged serving code and a stand-in for TensorRT-LLM's LLM API that really generates
(tests/gpu_standins/trtllm_torch: a random-weight Llama in PyTorch over a paged KV cache allocated at start with the
budget the memory plan derived). Here a tiny Llama on CPU instances; on a GPU, Llama-3.1-8B's shape
(tests/gpu_standins/test_on_gpu.py, bench/llm_pair.py).

Checked: the plan's KV budget and the FP8 KV dtype reach the cache that is allocated; concurrent streams to both
models all finish with the final flag and every token asked for; the stand-in's paged, batched decoding gives the
tokens a plain full-sequence pass gives (so its numbers on the GPU come from correct generation)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import pytest
import torch

from model_repo.local_server import TritonServer
from tests.gpu_standins import checks
from tests.gpu_standins.checks import LLM_PAIR
from tests.gpu_standins.llama_checkpoint import CHAT_TEMPLATE, write_checkpoint
from tests.gpu_standins.repository import HERE, TINY_LLAMA, llm_pair_pool

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    repository, plan = llm_pair_pool(tmp_path_factory.mktemp("llm-pair") / "llm", "h200", on_gpu=False)
    server = TritonServer(repository, work_dir=tmp_path_factory.mktemp("llm-pair-server"), startup_timeout_s=180)
    with server:
        yield server, repository, plan


def test_each_model_allocates_the_kv_cache_its_plan_derived(pair):
    _, repository, plan = pair
    for model in plan.models:
        stats = checks.llm_stats(repository, model.model)
        assert stats["kv_cache_tokens"] == model.kv_tokens, (stats, model)
        assert stats["kv_dtype"] == "float8_e4m3fn" and model.kv_dtype == "fp8"


def test_concurrent_streams_to_both_models_all_finish(pair):
    server, repository, _ = pair
    results = checks.llm_streams(server, LLM_PAIR, per_model=4, max_tokens=12)
    for model, streams in results.items():
        assert [final for *_, final in streams] == [True] * 4, model
        assert [tokens for _, _, tokens, _ in streams] == [12] * 4, model
        assert checks.llm_stats(repository, model)["requests_done"] >= 4


def _standin():
    """The stand-in package under a name of its own (it is ``tensorrt_llm`` only inside a model's directory)."""
    name = "trtllm_torch_standin"
    if name not in sys.modules:
        package = HERE / "trtllm_torch" / "tensorrt_llm"
        spec = importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                      submodule_search_locations=[str(package)])  # fmt: skip
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def test_paged_batched_decoding_matches_a_full_sequence_pass(tmp_path):
    standin = _standin()
    write_checkpoint(tmp_path / "checkpoint", CHAT_TEMPLATE, None, architecture=TINY_LLAMA, fp8=True)
    llm = standin.LLM(str(tmp_path / "checkpoint"), kv_cache_config=standin.KvCacheConfig(max_tokens=1024))
    prompts = [list(range(40, 47)), list(range(60, 90))]  # different lengths: the batch pads and masks

    async def generate(prompt):
        greedy = standin.SamplingParams(max_tokens=10, top_k=1)
        return [o async for o in llm.generate_async(prompt, greedy, streaming=True)][-1].outputs[0].token_ids

    async def together():
        return await asyncio.gather(*(generate(p) for p in prompts))

    try:
        # A loop of its own, not asyncio.run: that leaves the main thread without a current event loop, which
        # later tests that build Pulumi outputs need.
        loop = asyncio.new_event_loop()
        try:
            generated = loop.run_until_complete(together())
        finally:
            loop.close()
        engine = llm._engine
        with torch.inference_mode():
            for prompt, tokens in zip(prompts, generated, strict=True):
                for k in range(len(tokens)):
                    sequence = prompt + tokens[:k]
                    n = len(sequence)
                    slots = torch.arange(n)  # the cache is idle now: any slots will do
                    mask = torch.ones(n, n, dtype=torch.bool).tril()[None, None]
                    logits = engine.model.forward(torch.tensor(sequence), torch.arange(n), slots, slots[None], mask,
                                                  engine.pool)  # fmt: skip
                    assert int(engine.allowed[logits[0, engine.allowed].argmax()]) == tokens[k], (prompt, k)
    finally:
        llm.shutdown()
