"""The gpu target's speech pool as rendered, served by the real tritonserver with engine stand-ins, on this CPU.

``tests/gpu_standins``: the renderer's gpu repository of the speech pool, each TensorRT plan replaced by a PyTorch
stand-in with the engine's bindings (small here, CPU instances), the LLM pool's server beside it. Real speech goes
through ``voice_pipeline``: ANC, VAD, the gpu ASR glue (NeMo features, encoder, TDT decoding over the decoder-joint),
the gpu embed glue, retrieval, the LLM over gRPC, the gpu TTS glue (FastPitch -> HiFi-GAN with NeMo's export
bindings). The same checks run full-size on a GPU with ``tests/gpu_standins/test_on_gpu.py``.

Not run here: TensorRT itself; GPU memory (outputs here are in CPU memory; the GPU run shows the difference).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.gpu_standins import checks
from tests.gpu_standins.repository import llm_pool, speech_pool

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def standin_pools(tmp_path_factory):
    speech = speech_pool(tmp_path_factory.mktemp("standins") / "speech", on_gpu=False)
    llm = llm_pool(tmp_path_factory.mktemp("standins-llm") / "llm", on_gpu=False)
    with checks.pools(speech, llm, tmp_path_factory.mktemp("standin-servers")) as pools:
        yield pools


def test_a_spoken_turn_goes_through_every_gpu_target_stage(standin_pools, speech_sample):
    checks.check_voice_turn(standin_pools.speech, speech_sample.noisy)


def test_each_gpu_target_stage_answers_with_its_interface(standin_pools, speech_sample):
    checks.check_stages(standin_pools.speech, speech_sample.noisy)


def test_a_cancelled_turn_ends(standin_pools, speech_sample):
    checks.check_cancelled_turn_ends(standin_pools.speech, speech_sample.noisy, standin_pools.llm.model_repository)


def test_bls_reads_engine_outputs_through_cpu_memory(standin_pools):
    seen = checks.bls_memory(standin_pools.speech)
    assert seen["default_on_cpu"] and not seen["numpy_error"], "on CPU instances the outputs are in CPU memory"
    assert seen["bls_shape"] == [1, 1024, 100]


def test_a_stand_in_refuses_shapes_outside_the_engines_profile(standin_pools):
    """As TensorRT does: so the glue's splitting above is what keeps long input working, not a lenient stand-in."""
    from local import triton_calls

    client = triton_calls.grpc_client(standin_pools.speech.endpoints.grpc)
    try:
        ids = np.ones((1, 300), dtype=np.int64)
        feeds = {"text": ids, "pitch": np.zeros((1, 300), np.float32), "pace": np.ones((1, 300), np.float32)}
        with pytest.raises(triton_calls.CallError, match=r"outside the optimization profile \[1, 256\]"):
            triton_calls.infer(client, "tts_fastpitch", feeds, ["spect"])
    finally:
        client.close()


def test_one_tts_instance_speaks_concurrent_turns_without_queueing_them(standin_pools):
    """The gpu TTS glue executes as a coroutine: a turn whose sentence is on the engines does not hold the next
    turn in Triton's queue (one synchronous instance spoke one turn at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    from local import triton_calls

    server = standin_pools.speech
    text = np.array([b"Your call is being connected. Please hold. An agent will answer shortly."], dtype=np.object_)

    def speak(_):
        client = triton_calls.grpc_client(server.endpoints.grpc)
        try:
            return triton_calls.stream(client, "tts", {"TEXT": text}, ["AUDIO"], 300.0)[0]
        finally:
            client.close()

    names = ("nv_inference_request_success", "nv_inference_queue_duration_us")
    before = checks.counters(server, "tts", names)
    with ThreadPoolExecutor(3) as pool:
        streams = list(pool.map(speak, range(3)))
    after = checks.counters(server, "tts", names, requests=before["nv_inference_request_success"] + 3)
    assert all(s[-1].final and sum(r.outputs["AUDIO"].size for r in s if "AUDIO" in r.outputs) for s in streams)
    assert after["nv_inference_request_success"] - before["nv_inference_request_success"] == 3
    queued_ms = (after["nv_inference_queue_duration_us"] - before["nv_inference_queue_duration_us"]) / 1000 / 3
    assert queued_ms < 50, f"TTS requests waited {queued_ms:.0f} ms on average in Triton's queue"


def test_utterances_of_different_lengths_share_an_asr_batch(standin_pools, speech_sample):
    """Triton batches requests whose inputs differ in shape only where the input allows ragged batches: the rendered
    AUDIO does, so eight utterances of eight lengths sent together reach the ASR glue in fewer executions than
    requests (without it: eight), and each still gets its own transcript (the glue pads the batch for the encoder).
    A long utterance sent first keeps the one instance busy while the eight arrive, so they meet in the queue even
    on a loaded machine (sent alone, a slow client could let each execute before the next arrives)."""
    import queue

    import tritonclient.grpc as grpcclient

    from local import triton_calls

    server = standin_pools.speech
    rate = np.array([[16_000]], dtype=np.int32)
    lengths = [16_000 + 1_600 * i for i in range(8)]  # 1.0 s to 1.7 s
    blocker_samples = 16_000 * 20  # 20 s: keeps the stand-in encoder busy while the eight arrive

    def inputs(samples):
        audio = np.ascontiguousarray(np.resize(speech_sample.noisy, samples)[None, :])
        tensors = [
            grpcclient.InferInput("AUDIO", list(audio.shape), "FP32"),
            grpcclient.InferInput("SAMPLE_RATE", [1, 1], "INT32"),
        ]
        tensors[0].set_data_from_numpy(audio)
        tensors[1].set_data_from_numpy(rate)
        return tensors

    names = ("nv_inference_count", "nv_inference_exec_count")
    client = triton_calls.grpc_client(server.endpoints.grpc)
    try:
        counted = checks.counters(server, "asr", names)["nv_inference_count"]
        client.infer("asr", inputs(lengths[0]))  # warm: the first call's set-up is not what is measured
        before = checks.counters(server, "asr", names, requests=counted + 1)
        done: queue.Queue = queue.Queue()
        sent = [blocker_samples, *lengths]
        for samples in sent:  # one connection, back to back, behind the blocker
            client.async_infer("asr", inputs(samples), lambda result, error: done.put((result, error)))
        results = [done.get(timeout=120) for _ in sent]
    finally:
        client.close()

    after = checks.counters(server, "asr", names, requests=before["nv_inference_count"] + len(sent))
    assert [error for _, error in results] == [None] * len(sent)
    assert [result.as_numpy("TRANSCRIPT").shape for result, _ in results] == [(1, 1)] * len(sent)
    assert after["nv_inference_count"] - before["nv_inference_count"] == len(sent)
    executions = after["nv_inference_exec_count"] - before["nv_inference_exec_count"]
    assert executions < len(sent), f"{len(sent)} utterances of different lengths took {executions} executions"
