"""The Grafana dashboards built with grafana-foundation-sdk: structure, PromQL syntax
(parsed by the real promtool), metric names, and the JSON export."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from grafana_vars import expand
from promql_names import metric_names

from infra.monitoring import metric_catalog
from infra.monitoring.dashboards import DASHBOARDS, build_dashboards, dashboard_json, iter_panels, main, panel_queries
from infra.monitoring.rule_files import load_rule_file, rule_file_paths

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    return build_dashboards()


def all_queries(dashboards: dict[str, dict]) -> list[tuple[str, str, str]]:
    return [(uid, title, expr) for uid, model in dashboards.items() for title, expr in panel_queries(model)]


def promtool_parses(tmp_path: Path, exprs: list[str]) -> subprocess.CompletedProcess[str]:
    """promtool parses PromQL offline only inside rule files: wrap each query as a recording rule."""
    rules = [{"record": f"panel:query_{index}:check", "expr": expr} for index, expr in enumerate(exprs)]
    path = tmp_path / "panel-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panel-queries", "rules": rules}]}))
    return subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_the_four_dashboards_are_built(dashboards: dict[str, dict]) -> None:
    assert set(dashboards) == {"triton-overview", "triton-llm", "voice-pipeline", "gpu-nodes"} == set(DASHBOARDS)
    titles = {model["title"] for model in dashboards.values()}
    assert titles == {"Triton overview", "LLM", "Voice pipeline", "GPU nodes"}


def test_panels_query_prometheus_through_the_datasource_variable(dashboards: dict[str, dict]) -> None:
    for uid, model in dashboards.items():
        variables = {variable["name"]: variable for variable in model["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        panels = [panel for panel in iter_panels(model) if panel["type"] != "row"]
        assert len(panels) >= 6, uid
        ids = [panel["id"] for panel in iter_panels(model)]
        assert len(ids) == len(set(ids)), f"{uid}: duplicate panel ids"
        for panel in panels:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (uid, panel["title"])
            assert panel["targets"], (uid, panel["title"])
            assert panel["fieldConfig"]["defaults"]["unit"], (uid, panel["title"])


def test_required_panels_exist(dashboards: dict[str, dict]) -> None:
    def exprs(uid: str) -> str:
        return "\n".join(expr for _, expr in panel_queries(dashboards[uid]))

    overview = exprs("triton-overview")
    for record in (
        "model:nv_inference_request_success:rate5m",
        "model:triton_request_seconds:quantile",
        "model:triton_queue_seconds:mean5m",
        "model:triton_compute_infer_seconds:mean5m",
        "model:triton_batch_size:mean5m",
        "model:nv_inference_request_failure:rate5m",
    ):
        assert record in overview
    assert "model:triton_first_response_seconds:quantile" in exprs("triton-llm")
    assert "model:triton_llm_output_tokens:rate5m" in exprs("triton-llm")
    assert "role:triton_request_seconds:mean5m" in exprs("voice-pipeline")
    gpu = exprs("gpu-nodes")
    for record in ("node:dcgm_gpu_utilization:ratio", "node:dcgm_fb_used_bytes:sum", "node:dcgm_power_watts:sum"):
        assert record in gpu
    assert "node:dcgm_gpu_temperature_celsius:max" in gpu


def test_every_panel_query_is_valid_promql(dashboards: dict[str, dict], tmp_path: Path) -> None:
    queries = all_queries(dashboards)
    result = promtool_parses(tmp_path, [expand(expr) for _, _, expr in queries])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_syntax_check_rejects_a_broken_query(tmp_path: Path) -> None:
    result = promtool_parses(tmp_path, ['sum by (model (rate(nv_inference_count{model=~".*"}[1m]))'])
    assert result.returncode != 0


def test_panels_read_only_recorded_or_catalogued_metrics(dashboards: dict[str, dict]) -> None:
    records = {
        rule["record"]
        for path in rule_file_paths()
        for group in load_rule_file(path)["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    unknown = {
        (uid, title, name)
        for uid, title, expr in all_queries(dashboards)
        for name in metric_names(expr)
        if name not in records and metric_catalog.family(name) not in metric_catalog.ALL
    }
    assert not unknown, f"panels read metrics that are neither recorded nor catalogued: {sorted(unknown)}"


def test_export_writes_one_json_file_per_dashboard(tmp_path: Path, dashboards: dict[str, dict]) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    written = {path.stem: json.loads(path.read_text()) for path in tmp_path.glob("*.json")}
    assert written == dashboards
    # Deterministic output: an unchanged dashboard produces an identical ConfigMap.
    assert dashboard_json(build_dashboards()["gpu-nodes"]) == dashboard_json(dashboards["gpu-nodes"])
