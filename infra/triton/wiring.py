"""How the program adds Triton to a stack: one call with the foundation and the declared engines.

    from infra.triton.wiring import build_triton
    triton = build_triton(platform, engines=declared_engines)   # in infra.program.build
    outputs.update(triton.outputs)

``TritonSettings`` come from :meth:`TritonSettings.defaults` for the stack's environment and GPU
pools, overridden by ``overrides`` (the stack config's ``triton`` object mapped to field names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi

from infra.triton.component import TritonPlatform, TritonPlatformArgs
from infra.triton.publication import DEFAULT_BUILD_ROOT, EngineLike, engines_by_pool
from infra.triton.settings import PoolServing, TritonSettings, TritonSettingsError

CONFIG_KEY = "triton-platform:triton"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def triton_overrides(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stack config's ``triton`` object (camelCase keys) -> ``TritonSettings.defaults`` overrides.

    Unknown keys fail naming the config key and the allowed ones (a typo must not fall back to a default).
    """
    import dataclasses

    top = {f.name for f in dataclasses.fields(TritonSettings)} - {"pools"}
    per_pool = {f.name for f in dataclasses.fields(PoolServing)}
    overrides: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        name = _snake(key)
        if key == "pools":
            if not isinstance(value, Mapping):
                raise TritonSettingsError(f"{CONFIG_KEY}.pools = {value!r}: map pool names to their settings")
            pools = {}
            for pool, fields in value.items():
                if not isinstance(fields, Mapping):
                    raise TritonSettingsError(f"{CONFIG_KEY}.pools.{pool} = {fields!r}: expected an object")
                converted = {_snake(k): v for k, v in fields.items()}
                unknown = sorted(k for k, n in zip(fields, converted, strict=True) if n not in per_pool)
                if unknown:
                    allowed = sorted(_camel(n) for n in per_pool)
                    raise TritonSettingsError(f"{CONFIG_KEY}.pools.{pool}: unknown keys {unknown}; allowed {allowed}")
                pools[pool] = converted
            overrides["pools"] = pools
        elif name in top:
            overrides[name] = tuple(value) if isinstance(value, list) else value
        else:
            allowed = sorted(["pools", *(_camel(n) for n in top)])
            raise TritonSettingsError(f"{CONFIG_KEY}.{key}: unknown key; allowed {allowed}")
    return overrides


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def triton_settings(settings: Any, overrides: Mapping[str, Any] | None = None) -> TritonSettings:
    """Defaults for the stack's environment and pools, the VPC CIDR as the NLB's source range."""
    return TritonSettings.defaults(
        settings.environment,
        settings.gpu_pools,
        vpc_cidr=settings.network.vpc_cidr if settings.network.existing_vpc is None else None,
        **dict(overrides or {}),
    )


def build_triton(
    platform: Any,
    *,
    engines: Mapping[Any, Any],
    overrides: Mapping[str, Any] | None = None,
    after: Sequence[pulumi.Resource] = (),
    build_root: Path = DEFAULT_BUILD_ROOT,
    name: str | None = None,
) -> TritonPlatform:
    """Declare Triton on ``platform`` (``infra.program.Platform``).

    ``engines``: either ``declare_engines(...)``'s result ((engine, pool) -> DeclaredEngine) or
    pool -> engine -> Engine. ``after``: extra resources the pods need first (e.g. the monitoring
    stack, whose ServiceMonitor CRD the metrics pipeline relies on).
    """
    if engines and all(isinstance(k, tuple) for k in engines):
        by_pool: Mapping[str, Mapping[str, EngineLike]] = engines_by_pool(engines)
    else:
        by_pool = engines  # type: ignore[assignment]
    settings = platform.settings
    return TritonPlatform(
        name or f"{platform.name}-triton",
        TritonPlatformArgs(
            settings=settings,
            triton=triton_settings(settings, overrides),
            k8s_provider=platform.k8s_provider,
            cluster_name=platform.cluster.name,
            oidc_provider_arn=platform.cluster.oidc_provider.arn,
            oidc_issuer_url=platform.cluster.oidc_issuer_url,
            repository_url=platform.stores.repository_url,
            registry_id=platform.stores.repository.registry_id,
            bucket=platform.stores.bucket_name,
            bucket_arn=platform.stores.bucket.arn,
            kms_key_arn=platform.stores.key.arn,
            engines=by_pool,
            tags=platform.tags,
            after=[*platform.node_groups.gpu.values(), platform.gpu_software, *after],
            build_root=build_root,
        ),
    )
