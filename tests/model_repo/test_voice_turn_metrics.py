"""The voice pipeline's per-turn metrics on the real server: turns streamed through ``voice_pipeline`` move the
waterfall histograms and the counters exactly as they should, a cancelled turn counts as a cancel, a bad request as a
failure of the ``request`` stage; then a real Prometheus scrapes the server with the platform's rule files and the
voice recording rules, SLO ratios, the dashboard's voice queries and every pool's KEDA trigger query return data."""

from __future__ import annotations

import math
import re
import time
import urllib.request

import numpy as np
import pytest
import yaml

from infra.monitoring.dashboards import build_dashboards, panel_queries
from infra.monitoring.rule_files import render_rule_files
from infra.monitoring.slos import LatencySlos
from infra.triton.autoscaling import pool_triggers, time_to_first_audio_query
from local.prometheus import Prometheus
from local.triton_calls import grpc_client, stream
from platform_spec.monitoring import VOICE_TURN_BUCKETS, VoiceSlo
from platform_spec.serving import triton_settings
from platform_spec.settings import load_stack_settings
from tests.model_repo.conftest import TAIL_SILENCE_S, pipeline_inputs, voice_turn
from tests.monitoring.grafana_vars import expand

pytestmark = [pytest.mark.triton, pytest.mark.prometheus]

LABELS = 'pipeline="voice_pipeline",pool="local"'
STAGES = ("asr", "retrieval", "llm_first_token", "first_phrase", "tts_first_audio")
TURNS = 2


def scrape(serving) -> str:
    return urllib.request.urlopen(serving.endpoints.metrics_url, timeout=10).read().decode()


def value(text: str, name: str, **labels: str) -> float:
    """The sample of ``name`` whose labels include ``labels`` (and the pipeline's), 0 when absent."""
    wanted = {"pipeline": "voice_pipeline", "pool": "local", **labels}
    total = 0.0
    for match in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))
        if all(found.get(k) == v for k, v in wanted.items()):
            total += float(match[2])
    return total


@pytest.fixture(scope="module")
def measured(serving, speech_sample):
    before = scrape(serving)
    turns = [voice_turn(serving, speech_sample, 40) for _ in range(TURNS)]
    return before, turns, scrape(serving)


def test_every_turn_is_counted_and_timed(measured):
    before, turns, after = measured
    assert all(t[-1].final for t in turns)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("voice_turns_total") == TURNS
    for name in ("voice_turn_asr_final_seconds", "voice_turn_time_to_first_audio_seconds",
                 "voice_turn_duration_seconds"):  # fmt: skip
        assert delta(f"{name}_count") == TURNS, name
    for stage in STAGES:
        assert delta("voice_turn_stage_seconds_count", stage=stage) == TURNS, stage
    # The waterfall adds up to the time to first audio; ASR final is its first stage; the turn lasts longer.
    first_audio = delta("voice_turn_time_to_first_audio_seconds_sum")
    stages = {stage: delta("voice_turn_stage_seconds_sum", stage=stage) for stage in STAGES}
    assert sum(stages.values()) == pytest.approx(first_audio, abs=1e-6 * TURNS)
    assert stages["asr"] == pytest.approx(delta("voice_turn_asr_final_seconds_sum"))
    assert all(v > 0 for v in stages.values()), stages
    assert delta("voice_turn_duration_seconds_sum") > first_audio > 0
    # What the client saw agrees: the server's clock starts at the end of speech, earlier than the request by at
    # most the sample's trailing silence (plus VAD's hangover), and the client heard the audio after it was sent.
    client_first_audio = [next(r.arrived_s for r in t if "AUDIO" in r.outputs) for t in turns]
    assert first_audio / TURNS <= np.mean(client_first_audio) + TAIL_SILENCE_S + 0.25
    assert delta("voice_turn_cancels_total") == 0 and delta("voice_turn_failures_total") == 0


def test_buckets_are_the_ones_the_slo_counts(measured):
    _, _, after = measured
    bounds = re.findall(r'^voice_turn_time_to_first_audio_seconds_bucket\{[^}]*le="([^"]+)"', after, re.MULTILINE)
    assert sorted({float(b) for b in bounds if b != "+Inf"}) == list(VOICE_TURN_BUCKETS)
    assert f'le="{VoiceSlo().time_to_first_audio_seconds:g}"' in after


def test_a_bad_request_counts_as_a_failure_of_the_request_stage(serving, measured):
    before = scrape(serving)
    with pytest.raises(Exception, match="AUDIO"):
        serving.stream("voice_pipeline", pipeline_inputs(np.zeros(100, dtype=np.float32), 10))
    after = scrape(serving)
    assert (
        value(after, "voice_turn_failures_total", stage="request")
        - value(before, "voice_turn_failures_total", stage="request")
        == 1
    )
    assert value(after, "voice_turns_total") - value(before, "voice_turns_total") == 1


def test_a_cancelled_turn_counts_as_a_cancel(serving, speech_sample, measured):
    before = scrape(serving)
    client = grpc_client(serving.endpoints.grpc)
    try:  # the transcript: the turn is under way, and the caller barges in
        stream(client, "voice_pipeline", pipeline_inputs(speech_sample.noisy, 200), ["TRANSCRIPT"], 120.0, 1)
    finally:
        client.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        after = scrape(serving)
        if value(after, "voice_turn_cancels_total") > value(before, "voice_turn_cancels_total"):
            break
        time.sleep(0.2)
    assert value(after, "voice_turn_cancels_total") - value(before, "voice_turn_cancels_total") == 1
    assert value(after, "voice_turn_failures_total") == value(before, "voice_turn_failures_total")


def test_prometheus_records_the_waterfall_and_the_slo_ratios(serving, speech_sample, measured, tmp_path):
    slo = VoiceSlo()
    rules = []
    for stem, content in render_rule_files(LatencySlos(), voice_slo=slo).items():
        path = tmp_path / f"{stem}.yaml"
        path.write_text(yaml.safe_dump(content))
        rules.append(path)
    host, _, port = serving.endpoints.metrics_url.removeprefix("http://").partition("/")[0].partition(":")
    # The target labels the Triton ServiceMonitor gives a pool's series in the cluster, for a pool named "local"
    # (the pipeline's turn metrics say pool="local" here).
    labels = {"namespace": "triton", "service": "triton-local"}
    with Prometheus([f"{host}:{port}"], rules=rules, labels=labels) as prometheus:
        prometheus.wait_for("voice_turn_time_to_first_audio_seconds_count > 0")
        voice_turn(serving, speech_sample, 40)  # a turn while Prometheus watches: the rates move
        for expr in ("pool:voice_turns:rate5m > 0",
                     "pool:voice_time_to_first_audio_seconds:p95_5m > 0",
                     "pool_stage:voice_turn_stage_seconds:mean5m",
                     "pool:voice_slow_turns:ratio_rate5m >= 0",
                     "pool:voice_turn_failures:ratio_rate5m >= 0"):  # fmt: skip
            assert prometheus.wait_for(expr, timeout_s=60), expr
        stages = {r["metric"]["stage"] for r in prometheus.query("pool_stage:voice_turn_stage_seconds:mean5m")}
        assert stages == set(STAGES)
        queries = [expand(q) for d in build_dashboards().values() for _, q in panel_queries(d) if "voice" in q]
        assert len(queries) >= 4, "the dashboards show the voice waterfall, the SLO burn and the replicas"
        for query in queries:
            prometheus.query(query)  # evaluates without error

        # Each KEDA trigger of the pools, as the dev stack declares them, returns one finite value here.
        dev = load_stack_settings("dev")
        triton = triton_settings(dev)
        for pool in dev.gpu_pools:
            local = pool.model_copy(update={"name": "local"})
            roles = ["pipeline"] if pool.role == "speech" else ["llm"]
            for trigger in pool_triggers(local, triton.pool(pool.name), triton, roles, LatencySlos(), slo):
                (sample,) = prometheus.query(trigger["metadata"]["query"])
                assert math.isfinite(float(sample["value"][1])), trigger
        (ttfa,) = prometheus.query(time_to_first_audio_query("local"))
        assert float(ttfa["value"][1]) > 0, "the turns just streamed are in the p95"
