"""Where a build runs, chosen by the Engine's ``runner`` input: ``{"kind": "local"}`` (in-process, the
CPU target) or ``{"kind": "kubernetes", "pool": ..., ...}`` (a Job on the target GPU pool)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engines.runners.kubernetes_job import JobSettings, KubernetesJobRunner, apis_from_kubeconfig
from engines.runners.local import LocalRunner
from engines.store.s3 import S3Options

RUNNER_KINDS = ("local", "kubernetes")


def runner_problems(raw: Any) -> list[str]:
    if not isinstance(raw, Mapping) or raw.get("kind") not in RUNNER_KINDS:
        return [f"{raw!r} must be an object with kind one of {list(RUNNER_KINDS)}"]
    if raw["kind"] == "kubernetes":
        try:
            JobSettings.from_input(raw)
        except (TypeError, ValueError) as exc:
            return [str(exc)]
    elif set(raw) - {"kind"}:
        return [f"the local runner takes no settings; remove {sorted(set(raw) - {'kind'})}"]
    return []


def make_runner(
    raw: Mapping[str, Any],
    store_uri: str,
    s3: S3Options | None,
    progress: Callable[[str], None],
    kubeconfig: str | None = None,
):
    if raw.get("kind") == "kubernetes":
        apis = apis_from_kubeconfig(raw.get("kubeconfig") or kubeconfig)
        return KubernetesJobRunner(JobSettings.from_input(raw), store_uri, apis, progress)
    return LocalRunner(s3=s3, progress=progress)


__all__ = ["RUNNER_KINDS", "JobSettings", "KubernetesJobRunner", "LocalRunner", "make_runner", "runner_problems"]
