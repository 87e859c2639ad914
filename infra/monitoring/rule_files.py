"""The Prometheus rule files shipped with the platform, and their per-stack rendering.

The YAML files under ``rules/`` are the source: promtool checks and unit-tests exactly
those files. A stack changes only two things, structurally, never by text templating:
the threshold series of the ``triton-slo`` group (from ``LatencySlos``) and the
``runbook_url`` annotations (prefixed with the repository URL where the runbooks are
browsable). Everything else ships byte-for-byte as tested.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from infra.monitoring.slos import LatencySlos, MonitoringSettingsError
from platform_spec.monitoring import VoiceSlo

RULES_DIR = Path(__file__).parent / "rules"
SLO_GROUP = "triton-slo"

# (recording rule, role label or None) -> LatencySlos field that sets its value.
SLO_SERIES: dict[tuple[str, str | None], str] = {
    ("triton:slo:request_p99_seconds", "asr"): "asr_p99_seconds",
    ("triton:slo:first_response_p99_seconds", "tts"): "tts_p99_seconds",
    ("triton:slo:first_response_p99_seconds", "llm"): "llm_p99_seconds",
    ("triton:slo:queue_seconds", None): "queue_seconds",
}


VOICE_TARGETS_GROUP = "voice-slo-targets"


def le_label(seconds: float) -> str:
    """A bucket bound as the ``le`` label Triton's exposition gives it (shortest form: 0.8, 1, 2.5)."""
    return f"{seconds:g}"


def voice_targets(voice: VoiceSlo) -> dict[str, tuple[float, dict[str, str]]]:
    """The voice SLO's threshold series: record name -> (value, labels)."""
    return {
        "voice:slo:time_to_first_audio_seconds": (
            voice.time_to_first_audio_seconds,
            {"le": le_label(voice.time_to_first_audio_seconds)},
        ),
        "voice:slo:slow_turn_budget_ratio": (round(1 - voice.time_to_first_audio_objective, 6), {}),
        "voice:slo:failed_turn_budget_ratio": (round(1 - voice.turn_success_objective, 6), {}),
    }


class RuleFileError(ValueError):
    """A rule file does not have the shape the platform relies on."""


def rule_file_paths() -> list[Path]:
    """Every shipped rule file (the unit tests in ``rules/tests`` are not shipped)."""
    return sorted(RULES_DIR.glob("*.yaml"))


def load_rule_file(path: Path) -> dict[str, Any]:
    """A rule file as data; fails naming the file when it has no ``groups`` list."""
    content = yaml.safe_load(path.read_text())
    if not isinstance(content, dict) or not isinstance(content.get("groups"), list):
        raise RuleFileError(f"{path}: a Prometheus rule file needs a top-level 'groups' list")
    return content


def _slo_key(rule: dict[str, Any]) -> tuple[str, str | None]:
    return rule.get("record", ""), (rule.get("labels") or {}).get("role")


def slo_values_in(content: dict[str, Any]) -> dict[str, float]:
    """The threshold each ``LatencySlos`` field has in a rule file's SLO group."""
    values: dict[str, float] = {}
    for group in content["groups"]:
        if group.get("name") != SLO_GROUP:
            continue
        for rule in group["rules"]:
            field = SLO_SERIES.get(_slo_key(rule))
            expr = str(rule["expr"]).strip()
            if field is not None and expr.startswith("vector(") and expr.endswith(")"):
                values[field] = float(expr[len("vector(") : -1])
    return values


def _render_slos(content: dict[str, Any], slos: LatencySlos, path: Path) -> None:
    seen: set[tuple[str, str | None]] = set()
    has_group = False
    for group in content["groups"]:
        if group.get("name") != SLO_GROUP:
            continue
        has_group = True
        for rule in group["rules"]:
            key = _slo_key(rule)
            field = SLO_SERIES.get(key)
            if field is None:
                continue
            if key in seen:
                raise RuleFileError(f"{path}: threshold series {key} is defined twice")
            seen.add(key)
            rule["expr"] = f"vector({float(getattr(slos, field))!r})"
    missing = set(SLO_SERIES) - seen
    if has_group and missing:
        raise RuleFileError(
            f"{path}: group {SLO_GROUP!r} lacks the threshold series {sorted(missing, key=str)}; "
            "rules/slo.yaml and infra.monitoring.rule_files.SLO_SERIES must list the same series"
        )


def _render_voice_targets(content: dict[str, Any], voice: VoiceSlo, path: Path) -> None:
    targets = voice_targets(voice)
    for group in content["groups"]:
        if group.get("name") != VOICE_TARGETS_GROUP:
            continue
        records = {rule.get("record") for rule in group["rules"]}
        if records != set(targets):
            raise RuleFileError(f"{path}: group {VOICE_TARGETS_GROUP!r} must record exactly {sorted(targets)}")
        for rule in group["rules"]:
            value, labels = targets[rule["record"]]
            rule["expr"] = f"vector({float(value)!r})"
            if labels:
                rule["labels"] = dict(labels)


def _render_runbooks(content: dict[str, Any], runbook_base_url: str) -> None:
    base = runbook_base_url.rstrip("/") + "/"
    for group in content["groups"]:
        for rule in group["rules"]:
            annotations = rule.get("annotations") or {}
            link = annotations.get("runbook_url")
            if link and "://" not in link:
                annotations["runbook_url"] = base + link


def render_rule_files(
    slos: LatencySlos, runbook_base_url: str | None = None, voice_slo: VoiceSlo | None = None
) -> dict[str, dict[str, Any]]:
    """Every shipped rule file as data, keyed by file stem, rendered for one stack (``voice_slo``: the stack's
    ``monitoring.voiceSlo``, default ``VoiceSlo()``).

    ``runbook_base_url`` is where ``infra/monitoring/`` can be browsed (e.g.
    ``https://github.com/acme/platform/blob/main/infra/monitoring``); without it the
    runbook links stay relative to that directory.
    """
    if runbook_base_url is not None and not runbook_base_url.startswith(("https://", "http://")):
        raise MonitoringSettingsError(
            f"monitoring setting runbook_base_url={runbook_base_url!r} is invalid: use an http(s) URL "
            "of the repository's infra/monitoring directory, or leave it unset"
        )
    rendered: dict[str, dict[str, Any]] = {}
    slo_files = 0
    for path in rule_file_paths():
        content = copy.deepcopy(load_rule_file(path))
        if any(group.get("name") == SLO_GROUP for group in content["groups"]):
            slo_files += 1
        _render_slos(content, slos, path)
        _render_voice_targets(content, voice_slo or VoiceSlo(), path)
        if runbook_base_url is not None:
            _render_runbooks(content, runbook_base_url)
        rendered[path.stem] = content
    if slo_files != 1:
        raise RuleFileError(f"{RULES_DIR}: expected exactly one file with group {SLO_GROUP!r}, found {slo_files}")
    return rendered
