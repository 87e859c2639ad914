"""Run checkov (its own venv, ``security/.venv``: checkov pins boto3 and friends the program's venv cannot share)
over what the platform puts on a cluster and in CI, and hold its findings against the committed skip list.

Scanned: every Kubernetes object of both stacks (tests.platform_objects: program objects, rendered charts,
engine-build Jobs), one file per object, plus the Dockerfiles and the GitHub workflows. A finding is identified
as ``"<stack> <source> <Kind>.<namespace>.<name>"`` (e.g. ``"prod chart kube-prometheus-stack
DaemonSet.monitoring.kube-prometheus-stack-prometheus-node-exporter"``) or as ``"<repository path> <resource>"``
for Dockerfiles and workflows; ``security/checkov_skips.yaml`` lists (check, glob over those identities, reason).
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from platform_spec.settings import REPO_ROOT
from tests.platform_objects import stack_objects

CHECKOV = REPO_ROOT / "security" / ".venv" / "bin" / "checkov"
SKIPS = REPO_ROOT / "security" / "checkov_skips.yaml"
FRAMEWORKS = ("kubernetes", "dockerfile", "github_actions")
STACKS = ("dev", "prod")


@dataclass(frozen=True)
class Finding:
    check_id: str
    name: str
    identity: str

    def __str__(self) -> str:
        return f"{self.check_id} ({self.name}): {self.identity}"


@dataclass(frozen=True)
class Skip:
    check_id: str
    objects: tuple[str, ...]
    reason: str

    def covers(self, finding: Finding) -> bool:
        return finding.check_id == self.check_id and any(fnmatch.fnmatchcase(finding.identity, g) for g in self.objects)


def load_skips(path: Path = SKIPS) -> list[Skip]:
    skips = []
    for i, entry in enumerate(yaml.safe_load(path.read_text()) or []):
        reason = str(entry.get("reason") or "").strip()
        if not re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", str(entry.get("check", ""))) or not entry.get("objects"):
            raise ValueError(f"{path.name} entry {i}: needs 'check' (a checkov id), 'objects' (globs), 'reason'")
        if len(reason) < 20:
            raise ValueError(f"{path.name} entry {i} ({entry['check']}): give the reason it is right, in a sentence")
        skips.append(Skip(entry["check"], tuple(entry["objects"]), reason))
    return skips


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def write_objects(root: Path) -> dict[str, str]:
    """One YAML file per object under ``root/k8s``; returns file path (relative) -> "<stack> <source>"."""
    sources = {}
    for stack in STACKS:
        for n, (source, obj) in enumerate(stack_objects(stack).everything()):
            name = f"{n:04d}-{_slug(obj.get('kind', ''))}-{_slug(obj['metadata'].get('name', ''))}.yaml"
            relative = f"k8s/{stack}/{name}"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(yaml.safe_dump(obj, sort_keys=False))
            sources[relative] = f"{stack} {source}"
    return sources


def scanned_files() -> list[Path]:
    return sorted(REPO_ROOT.glob("docker/**/Dockerfile")) + sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))


def copy_files(root: Path, files: list[Path]) -> None:
    """The Dockerfiles and workflows under ``root/files`` at their repository paths (checkov finds workflows by
    their ``.github/workflows`` path, and ignores ``--file`` when ``--directory`` is given)."""
    for path in files:
        target = root / "files" / path.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())


def run_checkov(root: Path) -> list[dict]:
    command = [str(CHECKOV), "--quiet", "--compact", "--output", "json", "--skip-download", "--framework", *FRAMEWORKS,
               "--directory", str(root)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
    # checkov exits 1 when any check fails; anything else (or no JSON) is checkov itself failing.
    if result.returncode not in (0, 1) or not result.stdout.lstrip().startswith(("[", "{")):
        raise RuntimeError(f"checkov failed (exit {result.returncode}): {result.stderr[-3000:]}")
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def findings(reports: list[dict], root: Path, sources: dict[str, str]) -> list[Finding]:
    out = []
    for report in reports:
        for failed in report.get("results", {}).get("failed_checks", []):
            relative = Path(failed["file_abs_path"]).resolve().relative_to(root.resolve()).as_posix()
            if relative in sources:
                identity = f"{sources[relative]} {failed['resource']}"
            else:  # a Dockerfile or workflow: its repository path
                identity = f"{relative.removeprefix('files/')} {failed['resource'].rsplit('/', 1)[-1]}"
            out.append(Finding(failed["check_id"], failed.get("check_name", ""), identity))
    return sorted(set(out), key=str)
