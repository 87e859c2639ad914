"""The offline plan command shows what a stack declares, and never prints a secret.

Engine sources cannot be pinned here and the stacks name no admin role or deployer network, so the plans
run with stand-ins for them (``--stand-ins``: the synthetic source lock the tests use, the mocks' deploy
role, a private deployer range); without it the plan is strict and fails the way ``pulumi preview`` would."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from platform_spec.settings import REPO_ROOT
from tests.pulumi_harness import SYNTHETIC_SOURCES_LOCK
from tools import plan

STAND_INS = ["--stand-ins"]


def test_plan_lists_key_settings_of_the_dev_stack(capsys):
    assert plan.main(["--stack", "dev", *STAND_INS]) == 0
    out = capsys.readouterr().out
    assert out.count("IMDS tokens=required hop=1") == 3
    assert "AL2023_x86_64_NVIDIA SPOT g6e.2xlarge" in out
    assert "taints nvidia.com/gpu=true:NO_SCHEDULE" in out
    assert "endpoint private=True public=False" in out
    assert "auth=API creatorAdmin=False" in out
    assert "time-slicing replicas=2" in out
    assert "tags=IMMUTABLE scanOnPush=True encryption=KMS" in out
    assert "[protected]" not in out
    # the outputs table (its column width follows the longest output name)
    assert re.search(r"^  kubeconfig +\[secret\]$", out, re.MULTILINE)
    assert "certificate-authority-data" not in out and "get-token" not in out


def test_plan_marks_protected_resources_in_prod(capsys):
    assert plan.main(["--stack", "prod", *STAND_INS]) == 0
    out = capsys.readouterr().out
    assert out.count("[protected]") == 5  # three KMS keys (Secrets, stores, logs), the repository, the bucket
    assert "endpoint private=True public=False" in out
    assert "time-slicing" not in out
    # What a reviewer checks on the serving side, one line per resource.
    deployments = [
        line
        for line in out.splitlines()
        if line.startswith("  triton-platform-prod-triton-") and line.split()[0].endswith("-deployment")
    ]
    assert len(deployments) == 2
    for line in deployments:
        assert "@sha256:" in line and "nvidia.com/gpu=1" in line and "probes startup/readiness/liveness" in line
    assert "on queue-time > 20; time-to-first-audio > 0.8" in out  # the speech pool's KEDA triggers
    assert "llm_chat tensorrt_llm fp8 for h100 (sm 9.0" in out
    assert "__provider=" not in out  # a dynamic provider's pickled code is not a setting


def test_plan_json_hides_secrets(capsys):
    assert plan.main(["--stack", "dev", "--json", *STAND_INS]) == 0
    (document,) = json.loads(capsys.readouterr().out)
    assert document["outputs"]["kubeconfig"] == "[secret]"
    (provider,) = [r for r in document["resources"] if r["type"] == "pulumi:providers:kubernetes"]
    assert provider["inputs"]["kubeconfig"] == "[secret]"
    assert "certificate-authority-data" not in json.dumps(document)


def test_plan_reports_an_unknown_stack(capsys):
    assert plan.main(["--stack", "staging"]) == 1
    err = capsys.readouterr().err
    assert "'staging' has no config file" in err and "'dev'" in err


def test_plan_command_line_runs_every_stack():
    result = subprocess.run(
        [sys.executable, "-m", "tools.plan", *STAND_INS], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "Stack dev (Pulumi.dev.yaml)" in result.stdout
    assert "Stack prod (Pulumi.prod.yaml)" in result.stdout


def test_plan_without_pinned_sources_fails_naming_the_record_command_and_the_flag(capsys):
    # Strict by default: the stack's own lock (engines.sourcesLock) pins no source in this checkout.
    assert not (REPO_ROOT / "engines" / "sources.lock.json").exists(), (
        "engines/sources.lock.json now exists: point this test at a lock that lacks a pin"
    )
    assert plan.main(["--stack", "dev"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.rstrip("\n").splitlines()
    assert err[0] == "stack dev: sources without a pinned digest:"
    assert any("'hf://meta-llama/Llama-3.1-8B-Instruct' has no pinned digest" in line for line in err)
    assert any("`python -m engines.source_lock record hf://meta-llama/Llama-3.1-8B-Instruct" in line for line in err)
    assert err[-1].startswith("hint: ") and f"--sources-lock {SYNTHETIC_SOURCES_LOCK}" in err[-1]
    assert sum(line.startswith("hint: ") for line in err) == 1


def test_plan_hint_follows_every_failed_stack_once_and_only_for_missing_pins(tmp_path, capsys):
    incomplete = tmp_path / "sources.lock.json"
    incomplete.write_text(json.dumps({"schema": 1, "sources": {}}))
    assert plan.main(["--stack", "dev", "--stack", "prod", "--sources-lock", str(incomplete)]) == 1
    err = capsys.readouterr().err.rstrip("\n").splitlines()
    assert [line.split(":", 1)[0] for line in err if line.startswith("stack ")] == ["stack dev", "stack prod"]
    assert sum(line.startswith("hint: ") for line in err) == 1
    assert err[-1].startswith(f"hint: the lock given with --sources-lock ({incomplete}) lacks these pins")

    # A lock that is not even JSON is a different problem: its own error, no hint about pins.
    broken = tmp_path / "broken.lock.json"
    broken.write_text("{")
    assert plan.main(["--stack", "dev", "--sources-lock", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "is not valid JSON" in err and "hint:" not in err


def test_plan_names_the_values_only_the_team_can_set_and_the_stand_ins_flag(capsys):
    # Sources pinned (the synthetic lock), but no admin role and no deployer path: what a fresh clone lacks.
    assert plan.main(["--stack", "prod", "--sources-lock", SYNTHETIC_SOURCES_LOCK]) == 1
    err = capsys.readouterr().err
    assert "cluster.adminPrincipalArns is empty" in err and "no path for pulumi up to the Kubernetes API" in err
    hint = "hint: to see the whole plan before your team's values are set, add --stand-ins"
    assert err.rstrip().splitlines()[-1] == hint
