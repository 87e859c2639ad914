"""The shipped Prometheus rule files, checked and unit-tested by the real promtool.

promtool comes from Debian's ``prometheus`` package (``/usr/bin/promtool``). Its unit
tests live beside the rules (``infra/monitoring/rules/tests``); these tests run them,
prove they can fail, check that every alert is tested both firing and quiet, and check
the per-stack rendering (SLO thresholds, runbook links) with promtool too.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from promql_names import metric_names

from infra.monitoring import metric_catalog
from infra.monitoring.rule_files import (
    RULES_DIR,
    SLO_SERIES,
    load_rule_file,
    render_rule_files,
    rule_file_paths,
    slo_values_in,
)
from infra.monitoring.slos import LatencySlos, MonitoringSettingsError
from platform_spec.monitoring import MonitoringSettings, VoiceSlo

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
UNIT_TESTS_DIR = RULES_DIR / "tests"
RUNBOOKS = RULES_DIR.parent / "RUNBOOKS.md"


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def all_rules(content: dict) -> list[dict]:
    return [rule for group in content["groups"] for rule in group["rules"]]


def shipped_rules() -> list[dict]:
    return [rule for path in rule_file_paths() for rule in all_rules(load_rule_file(path))]


def unit_test_files() -> list[Path]:
    return sorted(UNIT_TESTS_DIR.glob("*.test.yaml"))


def test_promtool_is_installed() -> None:
    result = promtool("--version")
    assert result.returncode == 0, f"promtool missing: install Debian's 'prometheus' package ({result.stderr})"


@pytest.mark.parametrize("path", rule_file_paths(), ids=lambda p: p.name)
def test_promtool_check_rules_accepts_each_shipped_file(path: Path) -> None:
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules_rejects_a_broken_file(tmp_path: Path) -> None:
    """The check above can fail: a syntax error in an expression is reported."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "a:b:c", "expr": "sum(rate(x[5m])"}]}]})
    )
    result = promtool("check", "rules", str(broken))
    assert result.returncode != 0


@pytest.mark.parametrize("path", unit_test_files(), ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    result = promtool("test", "rules", path.name, cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_catch_an_unweighted_queue_time(tmp_path: Path) -> None:
    """Replacing the request-weighted queue time by an average of per-pod averages (the
    mistake the rule exists to avoid) makes the unit test fail."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    recording = rules / "triton-recording.yaml"
    content = load_rule_file(recording)
    for rule in all_rules(content):
        if rule.get("record") == "model:triton_queue_seconds:mean5m":
            rule["expr"] = (
                "avg by (model, role) (rate(nv_inference_queue_duration_us[5m])"
                " / rate(nv_inference_request_success[5m])) / 1e6"
            )
    recording.write_text(yaml.safe_dump(content, sort_keys=False))
    result = promtool("test", "rules", "triton-recording.test.yaml", cwd=rules / "tests")
    assert result.returncode != 0
    # promtool reports the unweighted value it got: (1 ms + 100 ms) / 2.
    assert 'model:triton_queue_seconds:mean5m", model="asr", role="asr"} 5.05E-02' in result.stdout + result.stderr


def _unit_tests() -> list[dict]:
    return [yaml.safe_load(path.read_text()) for path in unit_test_files()]


def test_every_rule_file_has_unit_tests() -> None:
    tested = {(UNIT_TESTS_DIR / name).resolve() for spec in _unit_tests() for name in spec["rule_files"]}
    untested = [path.name for path in rule_file_paths() if path.resolve() not in tested]
    assert not untested, f"rule files without promtool unit tests: {untested}"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for spec in _unit_tests():
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in shipped_rules() if "alert" in rule}
    assert alerts, "no alerts found"
    assert not alerts - fires, f"alerts never tested firing: {sorted(alerts - fires)}"
    assert not alerts - quiet, f"alerts never tested quiet: {sorted(alerts - quiet)}"


def test_every_recording_rule_is_tested() -> None:
    tested: set[str] = set()
    for spec in _unit_tests():
        for case in spec["tests"]:
            for check in case.get("promql_expr_test", []):
                tested |= metric_names(check["expr"])
            # Alert tests exercise the recording rules their expressions read.
            for check in case.get("alert_rule_test", []):
                tested.add(check["alertname"])
    alert_exprs: dict[str, list[str]] = {}  # a page and its ticket share an alert name
    for rule in shipped_rules():
        if "alert" in rule:
            alert_exprs.setdefault(rule["alert"], []).append(rule["expr"])
    for name in list(tested):
        for expr in alert_exprs.get(name, []):
            tested |= metric_names(expr)
    records = {rule["record"] for rule in shipped_rules() if "record" in rule}
    assert not records - tested, f"recording rules no unit test reads: {sorted(records - tested)}"


def test_rules_read_only_known_metrics() -> None:
    """Every metric a rule reads is a recording rule or a catalogued scraped metric."""
    records = {rule["record"] for rule in shipped_rules() if "record" in rule}
    unknown = {
        (rule.get("record") or rule.get("alert"), name)
        for rule in shipped_rules()
        for name in metric_names(rule["expr"])
        if name not in records and metric_catalog.family(name) not in metric_catalog.ALL
    }
    assert not unknown, f"rules read metrics that are neither recorded nor catalogued: {sorted(unknown)}"


def test_alerts_have_severity_summary_and_runbook() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in shipped_rules():
        if "alert" not in rule:
            continue
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        link = rule["annotations"]["runbook_url"]
        page, _, anchor = link.partition("#")
        assert page == "RUNBOOKS.md" and anchor in anchors, f"{rule['alert']}: {link} has no section in RUNBOOKS.md"


def test_slo_file_defaults_equal_latency_slos_defaults() -> None:
    (slo_file,) = [path for path in rule_file_paths() if path.name == "slo.yaml"]
    assert slo_values_in(load_rule_file(slo_file)) == dataclasses.asdict(LatencySlos())
    assert set(SLO_SERIES.values()) == {field.name for field in dataclasses.fields(LatencySlos)}


def _write_rendered(directory: Path, rendered: dict[str, dict]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stem, content in rendered.items():
        (directory / f"{stem}.yaml").write_text(yaml.safe_dump(content, sort_keys=False))


def test_rendered_rules_pass_promtool_and_carry_the_stack_thresholds(tmp_path: Path) -> None:
    slos = LatencySlos(asr_p99_seconds=0.9, tts_p99_seconds=0.3, llm_p99_seconds=1.5, queue_seconds=0.02)
    rendered = render_rule_files(slos, "https://git.example.com/platform/blob/main/infra/monitoring/")
    _write_rendered(tmp_path, rendered)
    for stem in rendered:
        result = promtool("check", "rules", str(tmp_path / f"{stem}.yaml"))
        assert result.returncode == 0, result.stdout + result.stderr
    assert slo_values_in(rendered["slo"]) == dataclasses.asdict(slos)
    links = [r["annotations"]["runbook_url"] for c in rendered.values() for r in all_rules(c) if "alert" in r]
    assert links and all(
        link.startswith("https://git.example.com/platform/blob/main/infra/monitoring/RUNBOOKS.md#") for link in links
    )
    # Everything but the thresholds and links ships as written (and as unit-tested).
    shipped = {path.stem: load_rule_file(path) for path in rule_file_paths()}
    for stem, content in rendered.items():
        for got, want in zip(all_rules(content), all_rules(shipped[stem]), strict=True):
            differing = {key for key in got.keys() | want.keys() if got.get(key) != want.get(key)}
            assert differing <= {"expr", "annotations"}, (stem, differing)
            if "expr" in differing:
                assert stem == "slo"


def test_rendered_threshold_drives_the_alert(tmp_path: Path) -> None:
    """With the ASR SLO raised to 0.9 s, a p99 of 0.8 s no longer fires; 1 s does."""
    _write_rendered(tmp_path / "rules", render_rule_files(LatencySlos(asr_p99_seconds=0.9)))
    summary = 'nv_inference_request_summary_us{{model="{m}",role="asr",version="1",pod="a",quantile="0.99"}}'
    alert_labels = {"severity": "warning", "role": "asr", "quantile": "0.99"}
    spec = {
        "rule_files": [f"rules/{name}.yaml" for name in ("triton-recording", "slo", "triton-alerts")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": summary.format(m="asr_ok"), "values": "800000x15"},
                    {"series": summary.format(m="asr_slow"), "values": "1000000x15"},
                ],
                "alert_rule_test": [
                    {
                        "alertname": "TritonLatencyP99OverSLO",
                        "eval_time": "11m",
                        "exp_alerts": [
                            {
                                "exp_labels": {**alert_labels, "model": "asr_slow"},
                                "exp_annotations": {
                                    "summary": "asr model asr_slow: p99 latency 1s is over its SLO.",
                                    "description": "The worst pod's p99 request latency has been above the asr "
                                    "SLO (triton:slo:request_p99_seconds) for 10 minutes.",
                                    "runbook_url": "RUNBOOKS.md#tritonlatencyp99overslo",
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "slo.test.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = promtool("test", "rules", "slo.test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runbook_base_url_must_be_http() -> None:
    with pytest.raises(MonitoringSettingsError, match="runbook_base_url='git@example.com:x'"):
        render_rule_files(LatencySlos(), "git@example.com:x")


@pytest.mark.parametrize(
    "field, value",
    [
        ("asr_p99_seconds", 0),
        ("tts_p99_seconds", -1.0),
        ("llm_p99_seconds", float("nan")),
        ("queue_seconds", "fast"),
        ("asr_p99_seconds", True),
    ],
)
def test_latency_slos_reject_bad_values(field: str, value: object) -> None:
    with pytest.raises(MonitoringSettingsError, match=rf"slos\.{field}=.*positive number of seconds"):
        LatencySlos(**{field: value})


def test_the_voice_slo_of_the_stack_config_sets_the_target_bucket_and_the_budgets(tmp_path: Path) -> None:
    """monitoring.voiceSlo rewrites the three target series; with a 0.5 s target, turns between 0.5 s and 0.8 s
    are slow (the SLI now counts the 0.5 s bucket), and promtool agrees."""
    voice = VoiceSlo(time_to_first_audio_seconds=0.5, time_to_first_audio_objective=0.9, turn_success_objective=0.99)
    rendered = render_rule_files(LatencySlos(), voice_slo=voice)
    targets = {r["record"]: r for r in all_rules(rendered["voice-slo"]) if r.get("record", "").startswith("voice:slo:")}
    assert targets["voice:slo:time_to_first_audio_seconds"]["expr"] == "vector(0.5)"
    assert targets["voice:slo:time_to_first_audio_seconds"]["labels"] == {"le": "0.5"}
    assert targets["voice:slo:slow_turn_budget_ratio"]["expr"] == "vector(0.1)"
    assert targets["voice:slo:failed_turn_budget_ratio"]["expr"] == "vector(0.01)"
    _write_rendered(tmp_path / "rules", rendered)
    bucket = 'voice_turn_time_to_first_audio_seconds_bucket{{pool="speech",le="{le}"}}'
    spec = {
        "rule_files": ["rules/voice-slo.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": bucket.format(le="0.5"), "values": "0+50x10"},
                    {"series": bucket.format(le="0.8"), "values": "0+100x10"},
                    {"series": 'voice_turn_time_to_first_audio_seconds_count{pool="speech"}', "values": "0+100x10"},
                ],
                "promql_expr_test": [
                    {
                        "expr": "pool:voice_slow_turns:ratio_rate5m",
                        "eval_time": "10m",
                        "exp_samples": [{"labels": 'pool:voice_slow_turns:ratio_rate5m{pool="speech"}', "value": 0.5}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "voice.test.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = promtool("test", "rules", "voice.test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_voice_target_that_is_no_bucket_bound_is_refused() -> None:
    with pytest.raises(ValueError, match=r"timeToFirstAudioSeconds=0.7 is invalid: use one of the turn histogram's"):
        MonitoringSettings.model_validate({"voiceSlo": {"timeToFirstAudioSeconds": 0.7}})
    with pytest.raises(ValueError, match=r"turn_success_objective=1.5 is invalid"):
        MonitoringSettings.model_validate({"voiceSlo": {"turnSuccessObjective": 1.5}})
