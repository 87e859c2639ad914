"""Every model of the rendered CPU repository, served by a real tritonserver, called on its own.

* the whole repository loads under strict readiness and every catalog model is READY;
* over HTTP and gRPC every model answers with the shapes and dtypes its config declares
  (decoupled models over a gRPC stream and over HTTP ``generate_stream``);
* VAD places the speech boundaries of a known utterance within ``ONSET_TOLERANCE_S`` /
  ``OFFSET_TOLERANCE_S``;
* ANC lowers the energy of a noise-only stretch by at least ``MIN_NOISE_REDUCTION_DB`` while keeping
  the speech level within ``MAX_SPEECH_CHANGE_DB``;
* dynamic batching really batches: under concurrent load Triton's own counters show fewer model
  executions than inferences.
"""

from __future__ import annotations

import queue
import time

import numpy as np
import pytest

from model_repo import catalog

pytestmark = pytest.mark.triton

SAMPLE_RATE = 16_000
# Silero frames are 32 ms and segments are padded by 30 ms: the onset lands within 0.1 s. The offset
# may trail the last phoneme further: in noise the speech probability decays over a few frames before
# it drops below the release threshold (measured: +0.18 s at ~8 dB SNR pink noise).
ONSET_TOLERANCE_S = 0.1
OFFSET_TOLERANCE_S = (-0.1, 0.25)
MIN_NOISE_REDUCTION_DB = 20.0
MAX_SPEECH_CHANGE_DB = 3.0

NUMPY_DTYPES = {"TYPE_FP32": np.float32, "TYPE_INT32": np.int32, "TYPE_STRING": np.object_}


def _text(*items: str) -> np.ndarray:
    return np.array([s.encode() for s in items], dtype=np.object_)


def example_inputs(config: dict, sample) -> dict[str, np.ndarray]:
    """A valid request for a model, built from the config the server reports.

    Every input the catalog uses has an example here; a new input name fails the test until it gets one.
    """
    speech = sample.noisy[sample.speech()][: 2 * SAMPLE_RATE]
    examples = {
        "AUDIO": speech.astype(np.float32),
        "SAMPLE_RATE": np.array([SAMPLE_RATE], dtype=np.int32),
        "TEXT": _text("my calls keep dropping on wifi"),
        "TEXT_INPUT": _text("How do I reset my password?"),
        "MAX_TOKENS": np.array([6], dtype=np.int32),
        "TEMPERATURE": np.array([0.7], dtype=np.float32),
        "TOP_K": np.array([2], dtype=np.int32),
        "EMBEDDING": np.full(catalog.EMBEDDING_DIM, 1 / np.sqrt(catalog.EMBEDDING_DIM), dtype=np.float32),
    }
    values = {}
    for tensor in config["input"]:
        assert tensor["name"] in examples, f"{config['name']}: no example for input {tensor['name']}"
        value = examples[tensor["name"]]
        assert value.dtype == NUMPY_DTYPES[tensor["data_type"]], f"{config['name']}.{tensor['name']}"
        values[tensor["name"]] = value[None, ...] if config.get("max_batch_size", 0) > 0 else value
    if config["name"] == "embed":  # two items in one request: the batch dimension is really used
        values["TEXT"] = _text("my calls keep dropping on wifi", "refund for a broken headset")[:, None]
    return values


def assert_declared(config: dict, name: str, value: np.ndarray) -> None:
    """``value`` has the dtype and (with -1 as a wildcard, batch dimension first) the dims declared."""
    declared = next(t for t in config["output"] if t["name"] == name)
    dims = [int(d) for d in declared["dims"]]
    if config.get("max_batch_size", 0) > 0:
        dims = [-1, *dims]
    want_dtype = NUMPY_DTYPES[declared["data_type"]]
    assert value.dtype == want_dtype, f"{config['name']}.{name}: dtype {value.dtype}, declared {want_dtype}"
    assert value.ndim == len(dims) and all(d in (-1, n) for d, n in zip(dims, value.shape, strict=True)), (
        f"{config['name']}.{name}: shape {value.shape}, declared {dims}"
    )


def test_every_catalog_model_is_ready_under_strict_readiness(triton, serving, cpu_repository):
    assert serving.http.is_server_ready() and serving.grpc.is_server_ready()
    index = {m["name"]: m for m in serving.http.get_model_repository_index()}
    assert set(index) == set(catalog.CATALOG) == set(cpu_repository.names)
    assert {name: m["state"] for name, m in index.items()} == dict.fromkeys(catalog.CATALOG, "READY")
    for name in catalog.CATALOG:
        assert serving.http.is_model_ready(name) and serving.grpc.is_model_ready(name)


def test_served_configs_are_the_rendered_ones(model_configs):
    for name, spec in catalog.CATALOG.items():
        config = model_configs[name]
        assert [t["name"] for t in config["input"]] == [t.name for t in spec.inputs]
        assert [t["name"] for t in config["output"]] == [t.name for t in spec.outputs]
        assert config["max_batch_size"] == catalog.effective_batching(spec, "cpu").max_batch_size
        assert bool(config.get("model_transaction_policy", {}).get("decoupled")) == spec.decoupled
        assert config["parameters"]["weights"]["string_value"] == spec.target("cpu").weights


REQUEST_RESPONSE = [n for n, s in catalog.CATALOG.items() if not s.decoupled]
STREAMING = [n for n, s in catalog.CATALOG.items() if s.decoupled]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("model", REQUEST_RESPONSE)
def test_request_response_models_answer_with_declared_shapes(serving, model_configs, speech_sample, model, protocol):
    config = model_configs[model]
    values = example_inputs(config, speech_sample)
    if model == "retriever":  # a real query vector: the embedding of a question
        text = {"TEXT": _text("how do I reset my password")[:, None]}
        values["EMBEDDING"] = serving.infer_http("embed", text).as_numpy("EMBEDDING")
    result = serving.infer_http(model, values) if protocol == "http" else serving.infer_grpc(model, values)
    batch = next(iter(values.values())).shape[0]
    for output in config["output"]:
        value = result.as_numpy(output["name"])
        assert value is not None, f"{model} did not return {output['name']}"
        assert_declared(config, output["name"], value)
        assert value.shape[0] == batch, f"{model}.{output['name']}: one row per batch item"


@pytest.mark.parametrize("model", STREAMING)
def test_streaming_models_answer_with_declared_shapes_over_grpc(serving, model_configs, speech_sample, model):
    config = model_configs[model]
    values = example_inputs(config, speech_sample)
    if model == "voice_pipeline":  # the pipeline needs the whole utterance, with silence around it
        values["AUDIO"] = speech_sample.noisy
    responses = serving.stream(model, values)
    assert responses[-1].final and not responses[-1].outputs, "the stream ends with an empty final response"
    seen = set()
    for response in responses[:-1]:
        assert response.outputs, f"{model}: a non-final response without outputs"
        for name, value in response.outputs.items():
            assert_declared(config, name, value)
            seen.add(name)
    assert seen == {t["name"] for t in config["output"]}, f"{model}: outputs never streamed: {seen}"


@pytest.mark.parametrize("model", STREAMING)
def test_streaming_models_answer_over_http_generate_stream(serving, model_configs, speech_sample, model):
    config = model_configs[model]
    values = example_inputs(config, speech_sample)
    if model == "voice_pipeline":
        values["AUDIO"] = speech_sample.noisy
    body = {
        name: (value.reshape(-1)[0].decode() if value.dtype == np.object_ else value.reshape(-1).tolist())
        for name, value in values.items()
    }
    body = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in body.items()}
    events = serving.stream_http(model, body)
    assert events and not any("error" in e for e in events), events[:3]
    declared = {t["name"]: t["data_type"] for t in config["output"]}
    seen = set()
    for event in events:
        for name, value in event.items():
            if name in ("model_name", "model_version"):
                continue
            assert name in declared, f"{model}: undeclared output {name}"
            seen.add(name)
            items = value if isinstance(value, list) else [value]
            python_type = {"TYPE_STRING": str, "TYPE_FP32": float, "TYPE_INT32": int}[declared[name]]
            assert all(isinstance(v, python_type) or (python_type is float and isinstance(v, int)) for v in items)
    assert seen == set(declared)


def test_vad_places_speech_boundaries_within_tolerance(serving, speech_sample):
    values = {"AUDIO": speech_sample.noisy[None, :], "SAMPLE_RATE": np.array([[SAMPLE_RATE]], dtype=np.int32)}
    result = serving.infer_grpc("vad", values)
    segments = result.as_numpy("SPEECH_SEGMENTS")[0]
    probs = result.as_numpy("SPEECH_PROBS")[0]
    start, end = float(segments[0, 0]), float(segments[-1, 1])
    truth = (speech_sample.speech_start_s, speech_sample.speech_end_s)
    print(f"VAD: speech at {truth[0]:.3f}-{truth[1]:.3f} s, segments {np.round(segments, 3).tolist()}")
    assert abs(start - truth[0]) <= ONSET_TOLERANCE_S
    assert OFFSET_TOLERANCE_S[0] <= end - truth[1] <= OFFSET_TOLERANCE_S[1]
    assert len(probs) == -(-len(speech_sample.noisy) // 512)  # one probability per 32 ms frame
    noise = speech_sample.noise_only()
    frames = slice(noise.start // 512, noise.stop // 512)
    assert probs[frames].max() < 0.5, "noise before the speech must not read as speech"


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20))


def test_anc_lowers_noise_energy_and_keeps_speech(serving, speech_sample, record_property):
    values = {"AUDIO": speech_sample.noisy[None, :], "SAMPLE_RATE": np.array([[SAMPLE_RATE]], dtype=np.int32)}
    denoised = serving.infer_http("anc", values).as_numpy("AUDIO")[0]
    assert denoised.shape == speech_sample.noisy.shape
    noise, speech = speech_sample.noise_only(), speech_sample.speech()
    reduction = _db(speech_sample.noisy[noise]) - _db(denoised[noise])
    speech_change = _db(denoised[speech]) - _db(speech_sample.clean[speech])
    record_property("anc_noise_reduction_db", round(reduction, 1))
    record_property("anc_speech_level_change_db", round(speech_change, 2))
    print(f"ANC: noise-only stretch lowered by {reduction:.1f} dB; speech level changed {speech_change:+.2f} dB")
    assert reduction >= MIN_NOISE_REDUCTION_DB
    assert abs(speech_change) <= MAX_SPEECH_CHANGE_DB


def test_dynamic_batching_batches_concurrent_requests(serving, record_property):
    """64 requests sent at once over gRPC; each carries one text. Triton's dynamic batcher must hand the
    model fewer executions than requests (measured here: 64 requests in 2-3 executions)."""
    model, requests = "embed", 64
    before = {m: serving.metric(m, model) for m in ("nv_inference_count", "nv_inference_exec_count")}
    done: queue.Queue = queue.Queue()
    for i in range(requests):
        inputs = serving.grpc_inputs({"TEXT": _text(f"question number {i} about my plan")[:, None]})
        serving.grpc.async_infer(model, inputs, callback=lambda result, error: done.put((result, error)))
    for _ in range(requests):
        result, error = done.get(timeout=60)
        assert error is None, error
        assert result.as_numpy("EMBEDDING").shape == (1, catalog.EMBEDDING_DIM)
    # Triton refreshes its metrics on an interval (2 s by default): poll until the count has caught up.
    deadline = time.monotonic() + 10
    while True:
        inferences = serving.metric("nv_inference_count", model) - before["nv_inference_count"]
        executions = serving.metric("nv_inference_exec_count", model) - before["nv_inference_exec_count"]
        if inferences >= requests or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    record_property("embed_inferences", inferences)
    record_property("embed_executions", executions)
    print(f"dynamic batching: {inferences:.0f} inferences in {executions:.0f} executions")
    assert inferences == requests
    assert executions <= inferences / 2, "requests sent together should be batched at least two at a time"
