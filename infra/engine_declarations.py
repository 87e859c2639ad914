"""Declare the stack's engines: one ``Engine`` resource per planned (engine, GPU pool).

The program calls ``declare_engines`` with the stack plan's engines (``engines.catalog_engines.
plan_engines``: planning and the compatibility gate ran there, so a missing source pin or an
engine/pool mismatch has already failed ``pulumi preview``), the model-store URI and the cluster's
kubeconfig; it gets back the ``Engine`` resources keyed by (engine name, pool name), whose outputs
(``uri``, ``primary_uri``, ``sha256``, ``key``, ...) the model repository publication references.

Builds run as Kubernetes Jobs on the target pool (``kubernetes_runner``); artifacts are kept when an
Engine is deleted unless ``delete_artifacts`` is set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from engines.build_resources import build_resources
from engines.catalog_engines import PlannedEngine
from engines.provider import Engine
from engines.runners.kubernetes_job import build_image_flavour


def kubernetes_runner(pool: str, **settings: Any) -> dict[str, Any]:
    """The ``runner`` input for builds on ``pool`` (keys of ``engines.runners.JobSettings``)."""
    return {"kind": "kubernetes", "pool": pool, **settings}


@dataclass(frozen=True)
class DeclaredEngine:
    plan: PlannedEngine
    resource: Engine


def declare_engines(
    plans: Iterable[PlannedEngine],
    store_uri: pulumi.Input[str],
    *,
    kubeconfig: pulumi.Input[str] | None = None,
    runner_settings: Mapping[str, Any] | None = None,
    builder_images: Mapping[str, pulumi.Input[str]] | None = None,
    delete_artifacts: bool = False,
    name_prefix: str = "engine",
    opts: pulumi.ResourceOptions | None = None,
) -> dict[tuple[str, str], DeclaredEngine]:
    """``runner_settings``: JobSettings keys shared by all pools (namespace, service_account, aws_region,
    timeout_seconds, ...); pass ``{"kind": "local"}`` to build in the provider's process instead.
    ``builder_images``: engine-builder flavour (``build_image_flavour``) -> ``repo@sha256:...`` the Jobs run in."""
    settings = dict(runner_settings or {})
    declared: dict[tuple[str, str], DeclaredEngine] = {}
    for plan in plans:
        if settings.get("kind") == "local":
            runner = settings
        else:  # the Job requests what its builder needs (checked against the pool's nodes by the stack plan)
            image = (builder_images or {}).get(build_image_flavour(plan.spec))
            runner = kubernetes_runner(plan.pool, **{**build_resources(plan.spec).job_settings(), **settings},
                                       image=image)  # fmt: skip
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
