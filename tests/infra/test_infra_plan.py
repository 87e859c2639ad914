"""The offline plan command shows what a stack declares, and never prints a secret."""

from __future__ import annotations

import json
import subprocess
import sys

from infra import plan
from infra.settings import REPO_ROOT


def test_plan_lists_key_settings_of_the_dev_stack(capsys):
    assert plan.main(["--stack", "dev"]) == 0
    out = capsys.readouterr().out
    assert out.count("IMDS tokens=required hop=1") == 3
    assert "AL2023_x86_64_NVIDIA SPOT g6e.2xlarge" in out
    assert "taints nvidia.com/gpu=true:NO_SCHEDULE" in out
    assert "endpoint private=True public=True from 203.0.113.0/24" in out
    assert "auth=API creatorAdmin=False" in out
    assert "time-slicing replicas=2" in out
    assert "tags=IMMUTABLE scanOnPush=True encryption=KMS" in out
    assert "[protected]" not in out
    assert "kubeconfig        [secret]" in out
    assert "certificate-authority-data" not in out and "get-token" not in out


def test_plan_marks_protected_resources_in_prod(capsys):
    assert plan.main(["--stack", "prod"]) == 0
    out = capsys.readouterr().out
    assert out.count("[protected]") == 4  # two KMS keys, the repository, the bucket
    assert "endpoint private=True public=False" in out
    assert "time-slicing" not in out


def test_plan_json_hides_secrets(capsys):
    assert plan.main(["--stack", "dev", "--json"]) == 0
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
        [sys.executable, "-m", "infra.plan"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "Stack dev (Pulumi.dev.yaml)" in result.stdout
    assert "Stack prod (Pulumi.prod.yaml)" in result.stdout
