"""Declare the stack's engines: one ``Engine`` resource per planned (engine, GPU pool).

The program calls ``declare_engines`` with the enabled catalog models, the stack's GPU pools, the
model-store URI and the cluster's kubeconfig; it gets back the ``Engine`` resources keyed by
(engine name, pool name), whose outputs (``uri``, ``primary_uri``, ``sha256``, ``key``, ...) the
model repository publication references. Planning and the compatibility gate run first, so a
missing source pin or an engine/pool mismatch fails ``pulumi preview`` before anything is built.

Builds run as Kubernetes Jobs on the target pool (``kubernetes_runner``); artifacts are kept when an
Engine is deleted unless ``delete_artifacts`` is set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from engines.catalog_engines import LlmVariants, PlannedEngine, PoolLike, plan_engines
from engines.provider import Engine
from engines.source_lock import SourceLock, load_lock


def kubernetes_runner(pool: str, **settings: Any) -> dict[str, Any]:
    """The ``runner`` input for builds on ``pool`` (keys of ``engines.runners.JobSettings``)."""
    return {"kind": "kubernetes", "pool": pool, **settings}


@dataclass(frozen=True)
class DeclaredEngine:
    plan: PlannedEngine
    resource: Engine


def declare_engines(
    models: Iterable[Any],
    pools: Iterable[PoolLike],
    store_uri: pulumi.Input[str],
    *,
    kubeconfig: pulumi.Input[str] | None = None,
    runner_settings: Mapping[str, Any] | None = None,
    lock: SourceLock | None = None,
    llm_variants: LlmVariants = "separate",
    delete_artifacts: bool = False,
    name_prefix: str = "engine",
    opts: pulumi.ResourceOptions | None = None,
) -> dict[tuple[str, str], DeclaredEngine]:
    """``runner_settings``: JobSettings keys shared by all pools (namespace, service_account, aws_region,
    timeout_seconds, ...); pass ``{"kind": "local"}`` to build in the provider's process instead."""
    plans = plan_engines(models, pools, lock or load_lock(), llm_variants)
    settings = dict(runner_settings or {})
    declared: dict[tuple[str, str], DeclaredEngine] = {}
    for plan in plans:
        runner = settings if settings.get("kind") == "local" else kubernetes_runner(plan.pool, **settings)
        resource = Engine(
            f"{name_prefix}-{plan.resource_name}",
            plan.spec,
            store=store_uri,
            runner=runner,
            delete_artifacts=delete_artifacts,
            kubeconfig=kubeconfig,
            opts=opts,
        )
        declared[(plan.engine, plan.pool)] = DeclaredEngine(plan, resource)
    return declared
