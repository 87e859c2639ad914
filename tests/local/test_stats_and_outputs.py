"""The statistics and stability rule of the load tools, and reading a deployed stack's endpoints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from local import stack_outputs
from local.stats import Sample, WindowStats, is_stable, percentile, summarize, window_of, within

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "outputs.contract.json"


# --- statistics ----------------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0, 1, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy_linear_interpolation(q):
    values = list(np.random.default_rng(q).exponential(10.0, 257))
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_refuses_nothing_and_bad_q():
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match="within"):
        percentile([1.0], 101)


def test_summarize_counts_errors_apart_and_reports_milliseconds():
    samples = [Sample(1.0, 0.010, True), Sample(1.1, 0.020, True), Sample(1.2, 5.0, False, None)]
    stats = summarize(samples, duration_s=2.0)
    assert stats.completed == 2 and stats.errors == 1
    assert stats.throughput == pytest.approx(1.0)  # successes per second only
    assert stats.avg_ms == pytest.approx(15.0)
    assert stats.p99_ms == pytest.approx(19.9)
    assert stats.first_p50_ms is None
    streamed = summarize([Sample(1.0, 0.5, True, 0.1), Sample(1.0, 0.7, True, 0.3)], 1.0)
    assert streamed.first_p50_ms == pytest.approx(200.0)


def test_a_window_without_success_has_no_latency():
    stats = summarize([Sample(1.0, 0.1, False)], 1.0)
    assert stats.completed == 0 and math.isnan(stats.p99_ms)


def _window(throughput: float, avg_ms: float) -> WindowStats:
    return WindowStats(1.0, int(throughput), 0, throughput, avg_ms, avg_ms, avg_ms, avg_ms, avg_ms * 2)


def test_stability_needs_three_windows_each_within_ten_percent_of_their_mean():
    assert not is_stable([_window(100, 10), _window(100, 10)])  # only two windows
    assert is_stable([_window(80, 30), _window(100, 10), _window(104, 10.5), _window(96, 9.6)])
    # Throughput agrees, latency does not (one window 20 % slower): not stable.
    assert not is_stable([_window(100, 10), _window(100, 10), _window(100, 13)])
    # Latency agrees, throughput does not.
    assert not is_stable([_window(100, 10), _window(125, 10), _window(100, 10)])
    # The rule can look at p99 instead of the average.
    windows = [_window(100, 10), _window(100, 10), _window(100, 10)]
    assert is_stable(windows, latency_metric="p99")


def test_stability_rejects_empty_windows_and_bad_settings():
    assert not is_stable([_window(100, 10), _window(100, 10), _window(0, float("nan"))])
    with pytest.raises(ValueError, match="fraction"):
        is_stable([_window(1, 1)] * 3, threshold=10)
    with pytest.raises(ValueError, match="latency metric"):
        is_stable([_window(1, 1)] * 3, latency_metric="p42")
    assert not within([0.0, 0.0, 0.0], 0.1)


def test_samples_fall_into_windows_by_completion_time():
    assert window_of(Sample(9.99, 0.1, True), start=10.0, length=2.0) == -1
    assert window_of(Sample(10.0, 0.1, True), start=10.0, length=2.0) == 0
    assert window_of(Sample(13.5, 0.1, True), start=10.0, length=2.0) == 1


# --- stack outputs -------------------------------------------------------------------------------


def test_the_contract_example_parses_into_pools():
    contract = json.loads(CONTRACT.read_text())["outputs"]
    document = {
        "outputsVersion": "1.0.0",
        "tritonEndpoints": contract["tritonEndpoints"]["example"],
        "servedModels": contract["servedModels"]["example"],
    }
    pools = stack_outputs.parse(json.dumps(document))
    assert [p.pool for p in pools] == sorted(contract["tritonEndpoints"]["example"])
    llm = next(p for p in pools if p.pool == "llm")
    assert llm.grpc == "triton-llm.triton.svc.cluster.local:8001"
    assert llm.models == ("llm_chat", "llm_support")


def test_a_pool_without_served_models_is_asked_for_its_models_by_the_tools():
    document = {
        "tritonEndpoints": {
            "llm": {"http": "http://a:8000", "grpc": "a:8001"},
            "speech": {"http": "http://b:8000", "grpc": "b:8001", "metrics": "http://b:8002/metrics"},
        },
        "servedModels": {"speech": [{"name": "vad", "versions": ["1"]}]},
    }
    pools = {p.pool: p for p in stack_outputs.parse(document)}
    assert pools["speech"].models == ("vad",) and pools["llm"].models == ()
    assert pools["speech"].metrics == "http://b:8002/metrics"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not JSON"),
        ('["a"]', "expected a JSON object"),
        ('{"clusterName": "x"}', "no 'tritonEndpoints' output"),
        ('{"outputsVersion": "2.0.0", "tritonEndpoints": {}}', "contract major 1"),
        ('{"tritonEndpoints": {"llm": {"http": "http://a:8000", "grpc": "a"}}}', "expected host:port"),
        ('{"tritonEndpoints": {"llm": {"http": "a:8000", "grpc": "a:8001"}}}', r"expected http\(s\)://host:port"),
        ('{"tritonEndpoints": {"llm": {"http": "http://a:8000", "grpc": "a:8001"}}, "servedModels": [1]}', "pool ->"),
        (
            '{"tritonEndpoints": {"llm": {"http": "http://a:8000", "grpc": "a:8001"}}, "servedModels": {"llm": "x"}}',
            "list of",
        ),
    ],
)
def test_bad_stack_outputs_name_the_key_and_the_fix(document, message):
    with pytest.raises(stack_outputs.StackOutputError, match=message):
        stack_outputs.parse(document, "outputs.json")


def test_stack_outputs_from_a_missing_file_say_how_to_make_one(tmp_path):
    with pytest.raises(stack_outputs.StackOutputError, match="pulumi stack output --json"):
        stack_outputs.read(str(tmp_path / "absent.json"))


def test_stack_outputs_are_read_from_a_file(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"tritonEndpoints": {"speech": {"http": "http://b:8000", "grpc": "b:8001"}}}))
    (pool,) = stack_outputs.parse(stack_outputs.read(str(path)), str(path))
    assert (pool.pool, pool.grpc, pool.models) == ("speech", "b:8001", ())
