"""How the program adds Triton to a stack: one call with the foundation, the stack plan and the engines.

    from infra.triton.wiring import build_triton
    triton = build_triton(platform, plan, engines=declared_engines)   # in infra.program.build
    outputs.update(triton.outputs)

Serving settings (``TritonSettings``) were parsed with the rest of the stack config
(``platform_spec.settings.Settings.serving``); the served models and the source lock come from the
stack plan (``infra.stack_plan``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi

from infra.images import TRITON, declare_images, flavour_of_role
from infra.stack_plan import StackPlan
from infra.triton.component import TritonPlatform, TritonPlatformArgs
from infra.triton.publication import DEFAULT_BUILD_ROOT, EngineLike, engines_by_pool


def build_triton(
    platform: Any,
    plan: StackPlan,
    *,
    engines: Mapping[Any, Any],
    images: Mapping[str, Any] | None = None,
    after: Sequence[pulumi.Resource] = (),
    build_root: Path = DEFAULT_BUILD_ROOT,
    name: str | None = None,
) -> TritonPlatform:
    """Declare Triton on ``platform`` (``infra.program.Platform``).

    ``images``: the serving image per flavour (``infra.images.declare_images`` with the TRITON recipe); declared
    here for the pools' roles when not given (``infra.program`` declares them with the engine-builder images).
    ``engines``: either ``declare_engines(...)``'s result ((engine, pool) -> DeclaredEngine) or
    pool -> engine -> Engine. ``after``: extra resources the pods need first (e.g. the monitoring
    stack, whose ServiceMonitor CRD the metrics pipeline relies on).
    """
    if engines and all(isinstance(k, tuple) for k in engines):
        by_pool: Mapping[str, Mapping[str, EngineLike]] = engines_by_pool(engines)
    else:
        by_pool = engines  # type: ignore[assignment]
    name = name or f"{platform.name}-triton"
    if images is None:
        declared = declare_images(name, platform.stores.repository_url, platform.stores.repository.registry_id,
                                  [(TRITON, flavour_of_role(p.role)) for p in plan.settings.gpu_pools],
                                  staging_parent=Path(build_root).parent)  # fmt: skip
        images = {flavour: image for (_, flavour), image in declared.items()}
    return TritonPlatform(
        name,
        TritonPlatformArgs(
            gpu_pools=plan.settings.gpu_pools,
            region=plan.settings.region,
            specs=plan.gpu_specs,
            sources=plan.lock,
            triton=plan.serving,
            k8s_provider=platform.k8s_provider,
            cluster_name=platform.cluster.name,
            oidc_provider_arn=platform.cluster.oidc_provider.arn,
            oidc_issuer_url=platform.cluster.oidc_issuer_url,
            images=images,
            slos=plan.slos,
            voice_slo=plan.settings.monitoring.voice_slo,
            bucket=platform.stores.bucket_name,
            bucket_arn=platform.stores.bucket.arn,
            kms_key_arn=platform.stores.key.arn,
            engines=by_pool,
            tags=platform.tags,
            after=[*platform.node_groups.gpu.values(), platform.gpu_software, *after],
            build_root=build_root,
        ),
    )
