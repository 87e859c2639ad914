"""Grafana dashboards as code (grafana-foundation-sdk), shipped as sidecar-loaded ConfigMaps.

Four dashboards: *Triton overview* (per model: traffic, failures, batch size, latency
quantiles, queue vs compute), *LLM* (time to first token, tokens per second), *Voice
pipeline* (the per-turn waterfall, the voice SLOs' burn and the pools' replicas, then
latency per stage, i.e. per model role) and *GPU nodes* (utilisation,
memory, power, temperature, XID errors per node, from DCGM). Panels read the recording
rules of ``rules/`` where one exists, so a panel and the alert on the same quantity
always agree; every query is evaluated against a real Prometheus by the tests.

Export the JSON with ``python -m infra.monitoring.dashboards --out <dir>``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dm

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAGS = ["triton-platform"]
PANEL_WIDTH = 12  # two panels per row of Grafana's 24-column grid
PANEL_HEIGHT = 8


def _query(expr: str, legend: str, ref_id: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).range()


def _queries(panel: Any, queries: list[tuple[str, str]]) -> Any:
    for index, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + index)))
    return panel


def _panel(panel: Any, title: str, unit: str, description: str, queries: list[tuple[str, str]]) -> Any:
    """Any panel builder, given the layout and datasource every panel here shares, and its queries."""
    panel = (
        panel.title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(PANEL_WIDTH)
        .height(PANEL_HEIGHT)
    )
    return _queries(panel, queries)


def _timeseries(title: str, unit: str, description: str, queries: list[tuple[str, str]]) -> timeseries.Panel:
    return _panel(timeseries.Panel(), title, unit, description, queries)


def _stacked(title: str, unit: str, description: str, queries: list[tuple[str, str]]) -> timeseries.Panel:
    """A time series whose series stack: parts of one whole (the stages of a turn)."""
    stacking = common_builders.StackingConfig().mode(common_models.StackingMode.NORMAL)
    return _timeseries(title, unit, description, queries).stacking(stacking).fill_opacity(60)


def _stat(title: str, unit: str, description: str, queries: list[tuple[str, str]]) -> stat.Panel:
    return _panel(stat.Panel(), title, unit, description, queries)


def _base(uid: str, title: str, description: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )


def _label_variable(name: str, label: str, metric: str) -> db.QueryVariable:
    """A multi-select variable over one label's values, "All" matching everything."""
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, {name})")
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
    )


def triton_overview() -> db.Dashboard:
    sel = 'model=~"$model"'
    return (
        _base("triton-overview", "Triton overview", "Per-model traffic, failures, batching and latency of Triton.")
        .with_variable(_label_variable("model", "Model", "nv_inference_count"))
        .with_row(db.Row("Traffic"))
        .with_panel(
            _timeseries(
                "Requests per second",
                "reqps",
                "Successful inference requests per second, all pods.",
                [(f"model:nv_inference_request_success:rate5m{{{sel}}}", "{{model}}")],
            )
        )
        .with_panel(
            _timeseries(
                "Failures per second",
                "reqps",
                "Failed requests by reason: BACKEND (the model raised), REJECTED (queue policy), CANCELED, OTHER.",
                [(f"model:nv_inference_request_failure:rate5m{{{sel}}}", "{{model}} {{reason}}")],
            )
        )
        .with_panel(
            _timeseries(
                "Inferences and executions per second",
                "ops",
                "Inferences count every batch item; executions count model runs.",
                [
                    (f"model:nv_inference_count:rate5m{{{sel}}}", "{{model}} inferences"),
                    (f"model:nv_inference_exec_count:rate5m{{{sel}}}", "{{model}} executions"),
                ],
            )
        )
        .with_panel(
            _timeseries(
                "Batch size",
                "none",
                "Inferences per execution: the batch size dynamic batching achieves.",
                [(f"model:triton_batch_size:mean5m{{{sel}}}", "{{model}}")],
            )
        )
        .with_row(db.Row("Latency"))
        .with_panel(
            _timeseries(
                "Request latency p50 / p99 (worst pod)",
                "s",
                "From Triton's latency summaries; empty while a model is idle.",
                [(f"model:triton_request_seconds:quantile{{{sel}}}", "{{model}} p{{quantile}}")],
            )
        )
        .with_panel(
            _timeseries(
                "Queue vs compute time per request",
                "s",
                "Request-weighted means across pods: time waiting in Triton's queue vs running the model.",
                [
                    (f"model:triton_queue_seconds:mean5m{{{sel}}}", "{{model}} queue"),
                    (f"model:triton_compute_infer_seconds:mean5m{{{sel}}}", "{{model}} compute"),
                ],
            )
        )
        .with_panel(
            _timeseries(
                "Mean request latency",
                "s",
                "Request-weighted mean end-to-end latency inside Triton.",
                [(f"model:triton_request_seconds:mean5m{{{sel}}}", "{{model}}")],
            )
        )
        .with_panel(
            _timeseries(
                "Pending requests",
                "none",
                "Requests received and not yet executing, all pods.",
                [(f"model:nv_inference_pending_request_count:sum{{{sel}}}", "{{model}}")],
            )
        )
    )


def llm() -> db.Dashboard:
    llm_sel = 'role="llm"'
    return (
        _base("triton-llm", "LLM", "Time to first token, generation throughput and load of the LLM models.")
        .with_panel(
            _timeseries(
                "Time to first token p50 / p99",
                "s",
                "From Triton's first-response histogram, merged across pods; the dashed SLO is the alert threshold.",
                [
                    (f"model:triton_first_response_seconds:quantile{{{llm_sel}}}", "{{model}} p{{quantile}}"),
                    (f"triton:slo:first_response_p99_seconds{{{llm_sel}}}", "SLO p99"),
                ],
            )
        )
        .with_panel(
            _timeseries(
                "Generated tokens per second",
                "short",
                "Output tokens per second, counted as each request finishes.",
                [(f"model:triton_llm_output_tokens:rate5m{{{llm_sel}}}", "{{model}}")],
            )
        )
        .with_panel(
            _timeseries(
                "Output tokens per request",
                "short",
                "Mean generated length of finished requests.",
                [
                    (
                        f"sum by (model) (rate(nv_llm_output_token_len_sum{{{llm_sel}}}[$__rate_interval]))"
                        f" / sum by (model) (rate(nv_llm_output_token_len_count{{{llm_sel}}}[$__rate_interval]))",
                        "{{model}}",
                    )
                ],
            )
        )
        .with_panel(
            _timeseries(
                "Requests per second",
                "reqps",
                "Finished LLM requests per second.",
                [(f"model:nv_inference_request_success:rate5m{{{llm_sel}}}", "{{model}}")],
            )
        )
        .with_panel(
            _timeseries(
                "Queue time per request",
                "s",
                "Request-weighted mean wait before generation starts.",
                [(f"model:triton_queue_seconds:mean5m{{{llm_sel}}}", "{{model}}")],
            )
        )
        .with_panel(
            _timeseries(
                "Pending requests",
                "none",
                "LLM requests waiting to be scheduled, all pods.",
                [(f"model:nv_inference_pending_request_count:sum{{{llm_sel}}}", "{{model}}")],
            )
        )
    )


def voice_pipeline() -> db.Dashboard:
    return (
        _base(
            "voice-pipeline",
            "Voice pipeline",
            "What callers feel (the per-turn waterfall and the voice SLOs), then latency per stage's models.",
        )
        .with_row(db.Row("Turns: what callers feel"))
        .with_panel(
            _stacked(
                "Turn waterfall: end of speech to first audio (mean per stage, stacked)",
                "s",
                "Triton's queue before the pipeline takes a turn up, then ASR (from the end of speech), retrieval, "
                "LLM first token, first phrase, TTS first audio: the stages add up to the time to first audio.",
                [
                    ('role:triton_queue_seconds:mean5m{role="pipeline"}', "queue before the pipeline"),
                    ("pool_stage:voice_turn_stage_seconds:mean5m", "{{pool}} {{stage}}"),
                ],
            )
        )
        .with_panel(
            _timeseries(
                "Time to first audio p50 / p95 and the target",
                "s",
                "End of speech to the first audio chunk of the answer, all pods of a pool; the SLO target.",
                [
                    ("pool:voice_time_to_first_audio_seconds:p50_5m", "{{pool}} p50"),
                    ("pool:voice_time_to_first_audio_seconds:p95_5m", "{{pool}} p95"),
                    ("voice:slo:time_to_first_audio_seconds", "target"),
                ],
            )
        )
        .with_panel(
            _timeseries(
                "SLO burn rate (1 = the budget lasts exactly the month)",
                "none",
                "Slow and failed turns over their error budgets, on the page alerts' windows (1 h and 5 m). Pages "
                "fire above 14.4 on both.",
                [
                    ("pool:voice_slow_turns:ratio_rate1h / on () group_left () voice:slo:slow_turn_budget_ratio",
                     "{{pool}} slow, 1h"),
                    ("pool:voice_slow_turns:ratio_rate5m / on () group_left () voice:slo:slow_turn_budget_ratio",
                     "{{pool}} slow, 5m"),
                    ("pool:voice_turn_failures:ratio_rate1h / on () group_left () voice:slo:failed_turn_budget_ratio",
                     "{{pool}} failed, 1h"),
                ],
            )  # fmt: skip
        )
        .with_panel(
            _timeseries(
                "Turns, cancels and failures per second",
                "ops",
                "Turns begun, turns the caller cancelled (barge-in), and failures by the stage that failed.",
                [
                    ("pool:voice_turns:rate5m", "{{pool}} turns"),
                    ("pool:voice_turn_cancels:rate5m", "{{pool}} cancels"),
                    ("sum by (pool, stage) (rate(voice_turn_failures_total[5m]))", "{{pool}} failed in {{stage}}"),
                ],
            )
        )
        .with_panel(
            _timeseries(
                "Pool replicas against the scaling signal",
                "none",
                "Ready Triton pods per pool (kube-state-metrics) and the time to first audio p95 over its target, "
                "the speech pool's KEDA trigger (scale out above 1).",
                [
                    ('sum by (deployment) (kube_deployment_status_replicas_ready{deployment=~"triton-.*"})',
                     "{{deployment}} ready pods"),
                    ("pool:voice_time_to_first_audio_seconds:p95_5m / on () group_left () "
                     "voice:slo:time_to_first_audio_seconds", "{{pool}} p95 / target"),
                ],
            )  # fmt: skip
        )
        .with_row(db.Row("Stages: the models behind each step"))
        .with_panel(
            _timeseries(
                "Mean latency per stage",
                "s",
                "Request-weighted mean latency of each stage's models.",
                [("role:triton_request_seconds:mean5m", "{{role}}")],
            )
        )
        .with_panel(
            _timeseries(
                "p99 latency per stage (worst model, worst pod)",
                "s",
                "From Triton's latency summaries, with the request-latency SLOs.",
                [
                    ('max by (role) (model:triton_request_seconds:quantile{quantile="0.99"})', "{{role}}"),
                    ("triton:slo:request_p99_seconds", "SLO {{role}}"),
                ],
            )
        )
        .with_panel(
            _timeseries(
                "Time to first response p99, streaming stages",
                "s",
                "First token (LLM) and first audio chunk (TTS), with their SLOs.",
                [
                    ('max by (role) (model:triton_first_response_seconds:quantile{quantile="0.99"})', "{{role}}"),
                    ("triton:slo:first_response_p99_seconds", "SLO {{role}}"),
                ],
            )
        )
        .with_panel(
            _timeseries(
                "Queue time per stage",
                "s",
                "Request-weighted mean time waiting in Triton's queue.",
                [("role:triton_queue_seconds:mean5m", "{{role}}")],
            )
        )
        .with_panel(
            _timeseries(
                "Pipeline requests per second",
                "reqps",
                "Conversational turns through the pipeline model.",
                [('model:nv_inference_request_success:rate5m{role="pipeline"}', "{{model}}")],
            )
        )
        .with_panel(
            _timeseries(
                "Pipeline end-to-end latency",
                "s",
                "Mean and p99 (worst pod) of the whole pipeline request.",
                [
                    ('model:triton_request_seconds:mean5m{role="pipeline"}', "{{model}} mean"),
                    ('model:triton_request_seconds:quantile{role="pipeline",quantile="0.99"}', "{{model}} p99"),
                ],
            )
        )
    )


def gpu_nodes() -> db.Dashboard:
    sel = 'node=~"$node"'
    return (
        _base("gpu-nodes", "GPU nodes", "GPU utilisation, memory, power, temperature and XID errors per node (DCGM).")
        .with_variable(_label_variable("node", "Node", "DCGM_FI_DEV_GPU_UTIL"))
        .with_panel(
            _timeseries(
                "GPU utilisation per node",
                "percentunit",
                "Mean utilisation of the node's GPUs.",
                [(f"node:dcgm_gpu_utilization:ratio{{{sel}}}", "{{node}}")],
            )
        )
        .with_panel(
            _timeseries(
                "GPU utilisation per GPU",
                "percent",
                "Each GPU's utilisation as DCGM reports it.",
                [(f"DCGM_FI_DEV_GPU_UTIL{{{sel}}}", "{{node}} GPU {{gpu}}")],
            )
        )
        .with_panel(
            _timeseries(
                "GPU memory per node",
                "bytes",
                "Framebuffer used and total over the node's GPUs.",
                [
                    (f"node:dcgm_fb_used_bytes:sum{{{sel}}}", "{{node}} used"),
                    (f"node:dcgm_fb_total_bytes:sum{{{sel}}}", "{{node}} total"),
                ],
            )
        )
        .with_panel(
            _timeseries(
                "GPU memory used per GPU",
                "percentunit",
                "Share of each GPU's framebuffer in use; the alert fires above 90%.",
                [(f"gpu:dcgm_fb_used:ratio{{{sel}}}", "{{node}} GPU {{gpu}}")],
            )
        )
        .with_panel(
            _timeseries(
                "Power per node",
                "watt",
                "Power drawn by the node's GPUs.",
                [(f"node:dcgm_power_watts:sum{{{sel}}}", "{{node}}")],
            )
        )
        .with_panel(
            _timeseries(
                "Temperature per node (hottest GPU)",
                "celsius",
                "Temperature of the hottest GPU of each node.",
                [(f"node:dcgm_gpu_temperature_celsius:max{{{sel}}}", "{{node}}")],
            )
        )
        .with_panel(
            _stat(
                "Last XID error per GPU",
                "none",
                "Code of the last XID error the driver reported (0: none). See the runbook for codes.",
                [(f"DCGM_FI_DEV_XID_ERRORS{{{sel}}}", "{{node}} GPU {{gpu}}")],
            )
        )
    )


DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {
    "triton-overview": triton_overview,
    "triton-llm": llm,
    "voice-pipeline": voice_pipeline,
    "gpu-nodes": gpu_nodes,
}


def build_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard as Grafana JSON model (plain data), keyed by uid."""
    built: dict[str, dict[str, Any]] = {}
    for uid, builder in DASHBOARDS.items():
        model = json.loads(json.dumps(builder().build(), cls=JSONEncoder))
        if model.get("uid") != uid:
            raise AssertionError(f"dashboard builder {builder.__name__} produced uid {model.get('uid')!r}, not {uid!r}")
        # Stable, unique panel ids, so links to a panel survive a rebuild.
        for panel_id, panel in enumerate(iter_panels(model), start=1):
            panel["id"] = panel_id
        built[uid] = model
    return built


def dashboard_json(model: dict[str, Any]) -> str:
    """The JSON Grafana's sidecar loads: sorted keys, so unchanged dashboards diff empty."""
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


def iter_panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, rows and the panels nested in collapsed rows included."""
    for panel in model.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []


def panel_queries(model: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL expression) for every query of a dashboard."""
    for panel in iter_panels(model):
        for target in panel.get("targets") or []:
            yield panel["title"], target["expr"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export the platform's Grafana dashboards as JSON files.")
    parser.add_argument("--out", type=Path, required=True, help="directory to write <uid>.json into")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for uid, model in build_dashboards().items():
        path = args.out / f"{uid}.json"
        path.write_text(dashboard_json(model))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
