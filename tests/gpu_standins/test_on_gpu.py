"""The gpu serving path on a GPU: the rendered speech pool, full-size engine stand-ins on CUDA, the real tritonserver.

Run on a GPU machine with the repositories ``python -m tests.gpu_standins.repository <dir>`` wrote (the GPU machine
needs neither espeak-ng nor the renderer's dependencies)::

    GPU_STANDINS=<dir> python -m pytest tests/gpu_standins/test_on_gpu.py -m gpu

The machine's Python needs what the speech pool's image adds (faiss-cpu, onnxruntime, scipy, tokenizers: see
docker/triton/requirements-speech.txt) in its own site-packages -- the Python backend's stub does not read PYTHONPATH
-- plus torch with CUDA for the stand-ins, and tritonclient[grpc] for the clients. Skipped elsewhere, saying why. The
CPU counterpart runs in CI: ``tests/model_repo/test_serving_gpu_standins.py``.

The Python must have numpy < 2 (what nvidia-pytriton 0.7.0 requires): under numpy 2 its Python-backend stub sends
every small tensor with 0 bytes ("input byte size mismatch ... Expected 4, got 0", an 8-string response read back
empty) -- seen on an H200 and an H100 whose Python has numpy 2.5, and reproduced here on CPU with numpy 2.2. Then
every compiled package the models import must work with numpy 1.26: on the GPU machines that meant scipy 1.15 in place
of their scipy 1.17 (which needs numpy 2; transformers imports it too) and no scikit-learn (built for numpy 2,
imported by transformers when present); tritonclient goes into site-packages as well (voice_pipeline's remote LLM
calls run inside the stub). ``GPU_STANDINS_LOGS=<dir>`` keeps the servers' logs.

Seen on NVIDIA H100 80GB and H200 machines (2026-12-05): BLS outputs of the engine stand-ins in GPU memory and read
through CPU memory, a spoken turn through every stage, every stage's interface, and the two LLMs sharing the GPU within
the plan pass. The cancelled turn, and concurrent turns, failed: the voice_pipeline stub died of a segmentation fault
in native code, intermittently, on a thread with no Python frame (faulthandler in the stub: a ``.pth`` file in
site-packages; ``PYTHONFAULTHANDLER`` does not reach the stub's embedded interpreter). Found since, on CPU, with a
native backtrace (``Stub::SendCleanupId`` -> ``~ResponseIterator`` -> ``~PbTensor``): Triton 2.51's Python backend
(r24.10) frees response arrays without the GIL -- a decoupled BLS stream's responses, on its cleanup thread, and the
outputs a client did not ask for, in ``send`` (``tests/model_repo/test_python_backend_frees_without_gil.py``). The
models now send only requested outputs and stream their decoupled stages over gRPC. Not re-run on a GPU since. A dead
instance answers "Stub process ... is not healthy" from then on (2.51 does not restart it).
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from model_repo.local_server import TritonServer
from tests.gpu_standins import checks
from tests.gpu_standins.checks import LLM_PAIR

pytestmark = pytest.mark.gpu

STANDINS = os.environ.get("GPU_STANDINS")


def _why_not() -> str | None:
    if not STANDINS:
        return "GPU_STANDINS is not set: it names the repositories `python -m tests.gpu_standins.repository` wrote"
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU on this machine (nvidia-smi not found)"
    return None


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    if reason := _why_not():
        pytest.skip(reason)
    with checks.pools(Path(STANDINS) / "speech", Path(STANDINS) / "llm", tmp_path_factory.mktemp("gpu")) as pools:
        yield pools


@pytest.fixture(scope="module")
def speech():
    return np.load(Path(STANDINS) / "speech.npy")


def test_engine_outputs_are_in_gpu_memory_and_bls_reads_them_through_cpu(pools):
    seen = checks.bls_memory(pools.speech)
    assert not seen["default_on_cpu"], "a GPU engine's BLS outputs arrive in GPU memory"
    assert "GPU" in seen["numpy_error"], seen["numpy_error"]
    assert seen["bls_shape"] == [1, 1024, 100], "preferred_memory CPU gives numpy the values"


def test_a_spoken_turn_goes_through_every_stage_on_the_gpu(pools, speech):
    checks.check_voice_turn(pools.speech, speech)


def test_each_stage_answers_with_its_interface(pools, speech):
    checks.check_stages(pools.speech, speech)


def test_a_cancelled_turn_ends(pools, speech):
    checks.check_cancelled_turn_ends(pools.speech, speech, pools.llm.model_repository)


def test_concurrent_turns_all_complete(pools, speech):
    with ThreadPoolExecutor(32) as pool:
        turns = list(pool.map(lambda _: checks.check_voice_turn(pools.speech, speech, max_tokens=20), range(32)))
    assert len(turns) == 32


@pytest.fixture(scope="module")
def llm_pair(tmp_path_factory):
    """Both Llama 8B variants in one server on the GPU, under the pool's memory plan (repository.llm_pair_pool)."""
    if reason := _why_not():
        pytest.skip(reason)
    repository = Path(STANDINS) / "llm_pair"
    with TritonServer(repository, work_dir=tmp_path_factory.mktemp("llm-pair"), startup_timeout_s=600) as server:
        yield server, repository, json.loads((repository / "memory_plan.json").read_text())


def test_two_llms_share_the_gpu_within_the_memory_plan(llm_pair):
    server, repository, plan = llm_pair
    streams = checks.llm_streams(server, LLM_PAIR, per_model=32, max_tokens=64)
    for model in LLM_PAIR:
        assert [(tokens, final) for _, _, tokens, final in streams[model]] == [(64, True)] * 32, model
        stats, planned = checks.llm_stats(repository, model), plan["models"][model]
        assert stats["kv_cache_tokens"] == planned["kvCacheTokens"] and stats["kv_dtype"] == "float8_e4m3fn"
        assert stats["weights_bytes"] / 2**30 == pytest.approx(planned["weightsGib"], abs=0.1), "FP8 weights as planned"
        total = planned["weightsGib"] + planned["kvCacheGib"] + planned["runtimeGib"]
        assert stats["peak_reserved_bytes"] / 2**30 <= total, (model, stats, total)
