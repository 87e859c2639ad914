"""Typed serving settings of the Triton platform, with per-environment defaults.

``TritonSettings`` decides what the stack config does not: replica bounds and the queue-time
target the autoscaler holds per GPU pool, pod sizes, drain timing, the optional internal NLB,
which namespaces may call Triton, and whether a smoke Job gates the rollout. Defaults per
environment come from :meth:`TritonSettings.defaults`; the stack config may override any of them
(``triton-platform:triton``, mapped onto this class by the program). Every value is validated at
construction, so a bad one fails before any resource is declared, naming key, value and fix.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti)?$")
_LABEL_KEY = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


class TritonSettingsError(ValueError):
    """A Triton setting that cannot be deployed; the message names key, value and fix."""


def _fail(key: str, value: Any, fix: str) -> TritonSettingsError:
    return TritonSettingsError(f"triton setting {key} = {value!r}: {fix}")


@dataclass(frozen=True)
class PoolServing:
    """How one GPU pool's Triton Deployment is sized, scaled and drained.

    ``min_replicas``/``max_replicas`` bound the pool's KEDA ScaledObject (0: a dev LLM pool that sleeps until
    voice turns arrive); ``target_queue_ms`` is the request-weighted mean queue time per request its queue-time
    trigger holds (below the monitoring alert's threshold, so scaling
    starts before anyone is paged). ``cpu``/``memory`` are both request and limit (Guaranteed QoS:
    the kubelet never throttles below the request nor evicts the pod first under memory pressure).
    ``ephemeral_storage`` holds the repository Triton downloads from S3 (LLM checkpoints included);
    ``shm`` is /dev/shm for the Python backend's tensors. ``exit_timeout_s`` is how long Triton
    drains in-flight requests on SIGTERM. ``startup_budget_s``: the slowest model load of the pool
    (``None``: derived from the roles it serves, see ``infra.triton.probes``).
    """

    min_replicas: int
    max_replicas: int
    target_queue_ms: float
    cpu: str
    memory: str
    ephemeral_storage: str
    shm: str = "2Gi"
    gpus: int = 1
    exit_timeout_s: int = 30
    startup_budget_s: int | None = None

    def validate(self, where: str) -> None:
        if isinstance(self.min_replicas, bool) or not isinstance(self.min_replicas, int) or self.min_replicas < 0:
            raise _fail(f"{where}.minReplicas", self.min_replicas, "use an integer >= 0 (0: a dev LLM pool only)")
        if isinstance(self.max_replicas, bool) or not isinstance(self.max_replicas, int):
            raise _fail(f"{where}.maxReplicas", self.max_replicas, "use an integer")
        if self.max_replicas < self.min_replicas:
            raise _fail(
                f"{where}.maxReplicas", self.max_replicas, f"must be >= minReplicas {self.min_replicas}"
            )
        if not isinstance(self.target_queue_ms, int | float) or not 0 < self.target_queue_ms <= 10_000:
            raise _fail(f"{where}.targetQueueMs", self.target_queue_ms, "use milliseconds in (0, 10000], e.g. 20")
        for key in ("cpu", "memory", "ephemeral_storage", "shm"):
            value = getattr(self, key)
            if not isinstance(value, str) or not _QUANTITY.match(value):
                raise _fail(f"{where}.{key}", value, "use a Kubernetes quantity such as '4', '500m' or '16Gi'")
        if not isinstance(self.gpus, int) or isinstance(self.gpus, bool) or not 1 <= self.gpus <= 8:
            raise _fail(f"{where}.gpus", self.gpus, "use 1..8 GPUs per pod")
        if not isinstance(self.exit_timeout_s, int) or not 5 <= self.exit_timeout_s <= 600:
            raise _fail(f"{where}.exitTimeoutS", self.exit_timeout_s, "use 5..600 seconds")
        budget = self.startup_budget_s
        if budget is not None and (not isinstance(budget, int) or not 30 <= budget <= 3600):
            raise _fail(f"{where}.startupBudgetS", budget, "use 30..3600 seconds, or leave unset to derive it")


# Defaults per environment and pool role. Sizes fit the stacks' instance types with room for the
# node's daemons: dev runs two pods per time-sliced GPU (g6e.2xlarge: 8 vCPU / 64 GiB for llm,
# g6.xlarge: 4 vCPU / 16 GiB for speech); prod gives each pod one whole GPU (p5.48xlarge: 8 GPUs,
# 192 vCPU, 2 TiB; g6e.xlarge/2xlarge for speech).
_DEFAULT_POOLS: Mapping[str, Mapping[str, PoolServing]] = MappingProxyType(
    {
        "dev": MappingProxyType(
            {
                "llm": PoolServing(1, 2, 50, cpu="3", memory="24Gi", ephemeral_storage="40Gi", shm="1Gi",
                                   exit_timeout_s=60),
                "speech": PoolServing(1, 2, 20, cpu="1500m", memory="6Gi", ephemeral_storage="10Gi", shm="1Gi"),
            }
        ),
        "prod": MappingProxyType(
            {
                "llm": PoolServing(2, 16, 50, cpu="16", memory="160Gi", ephemeral_storage="60Gi", shm="4Gi",
                                   exit_timeout_s=90),
                "speech": PoolServing(3, 8, 20, cpu="3", memory="24Gi", ephemeral_storage="20Gi", shm="2Gi"),
            }
        ),
    }
)  # fmt: skip


@dataclass(frozen=True)
class TritonSettings:
    """Serving settings of one stack.

    pools: GPU pool name (``gpuPools[].name``) -> :class:`PoolServing`.
    internal_nlb / nlb_source_cidrs: an internal Network Load Balancer per pool for callers
    outside the cluster (VPN, peered VPCs), and the CIDRs its NetworkPolicy admits.
    client_namespace_label: namespaces carrying this label (key, value) may call 8000/8001.
    monitoring_namespace: where Prometheus runs (admitted to the metrics port 8002).
    max_surge: pods a rollout may add above the replica count; 0 when the pool has no spare GPU
    (then one pod at a time is replaced, ``maxUnavailable`` 1).
    zone_spread: ``soft`` spreads replicas over AZs when capacity allows; ``hard`` refuses to
    schedule a replica that would unbalance AZs (safer against an AZ outage, but a GPU shortage
    in one AZ then blocks scale-out).
    llm_variants: ``separate`` (each LLM variant its own model) or ``lora`` (variants as adapters).
    smoke: run the post-deploy smoke Job, which fails ``pulumi up`` when a model is not ready or
    answers wrong.
    """

    pools: Mapping[str, PoolServing]
    namespace: str = "triton"
    internal_nlb: bool = False
    nlb_source_cidrs: tuple[str, ...] = ()
    client_namespace_label: tuple[str, str] = ("platform.io/triton-client", "true")
    monitoring_namespace: str = "monitoring"
    max_surge: int = 0
    zone_spread: Literal["soft", "hard"] = "soft"
    llm_variants: Literal["separate", "lora"] = "separate"
    smoke: bool = True
    pre_stop_sleep_s: int = 10
    # Prometheus' in-cluster URL for KEDA's Prometheus triggers; None: kube-prometheus-stack's Service in
    # ``monitoring_namespace`` (resolved by infra.triton.autoscaling from infra.monitoring.chart_values).
    prometheus_url: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "pools", MappingProxyType(dict(self.pools)))
        object.__setattr__(self, "nlb_source_cidrs", tuple(self.nlb_source_cidrs))
        if not self.pools:
            raise _fail("pools", {}, "declare one entry per GPU pool")
        for name, pool in self.pools.items():
            if not isinstance(pool, PoolServing):
                raise _fail(f"pools.{name}", pool, "expected a PoolServing")
            pool.validate(f"pools.{name}")
        for key in ("namespace", "monitoring_namespace"):
            value = getattr(self, key)
            if not isinstance(value, str) or len(value) > 63 or not _NAMESPACE.match(value):
                raise _fail(key, value, "use a Kubernetes namespace name (lowercase letters, digits, '-')")
        if self.namespace == self.monitoring_namespace:
            raise _fail("namespace", self.namespace, "Triton needs its own namespace, not the monitoring one")
        label_key, label_value = self.client_namespace_label
        if not _LABEL_KEY.match(label_key) or not isinstance(label_value, str):
            raise _fail("clientNamespaceLabel", self.client_namespace_label, "use [key, value], a valid label")
        for cidr in self.nlb_source_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError:
                raise _fail("nlbSourceCidrs", cidr, "use CIDR blocks such as 10.0.0.0/8") from None
        if self.internal_nlb and not self.nlb_source_cidrs:
            raise _fail(
                "nlbSourceCidrs", [], "internalNlb is on: list the CIDRs allowed to reach it (e.g. the VPC CIDR)"
            )
        if not isinstance(self.max_surge, int) or isinstance(self.max_surge, bool) or not 0 <= self.max_surge <= 4:
            raise _fail("maxSurge", self.max_surge, "use 0..4 (0 when the pool has no spare GPU)")
        if self.zone_spread not in ("soft", "hard"):
            raise _fail("zoneSpread", self.zone_spread, "use 'soft' or 'hard'")
        if self.llm_variants not in ("separate", "lora"):
            raise _fail("llmVariants", self.llm_variants, "use 'separate' or 'lora'")
        if not isinstance(self.pre_stop_sleep_s, int) or not 0 <= self.pre_stop_sleep_s <= 60:
            raise _fail("preStopSleepS", self.pre_stop_sleep_s, "use 0..60 seconds")
        if self.prometheus_url is not None and not self.prometheus_url.startswith(("http://", "https://")):
            raise _fail("prometheusUrl", self.prometheus_url, "use an http(s) URL of Prometheus")

    def pool(self, name: str) -> PoolServing:
        try:
            return self.pools[name]
        except KeyError:
            raise _fail("pools", sorted(self.pools), f"GPU pool {name!r} has no serving settings; add it") from None

    @classmethod
    def defaults(
        cls,
        environment: str,
        gpu_pools: Sequence[Any],
        *,
        vpc_cidr: str | None = None,
        **overrides: Any,
    ) -> TritonSettings:
        """Defaults for ``environment`` (dev | prod) and the stack's GPU pools (``name``, ``role``).

        ``vpc_cidr`` becomes the NLB's admitted source range unless ``nlb_source_cidrs`` is given.
        ``overrides`` replace top-level fields; ``pools`` in them may name only some pools and
        only some fields (``{"speech": {"max_replicas": 12}}``).
        """
        if environment not in _DEFAULT_POOLS:
            raise _fail("environment", environment, f"use one of {sorted(_DEFAULT_POOLS)}")
        by_role = _DEFAULT_POOLS[environment]
        pool_overrides = dict(overrides.pop("pools", None) or {})
        pools: dict[str, PoolServing] = {}
        for gpu_pool in gpu_pools:
            base = by_role.get(gpu_pool.role)
            if base is None:
                raise _fail(f"gpuPools.{gpu_pool.name}.role", gpu_pool.role, f"use one of {sorted(by_role)}")
            changes = dict(pool_overrides.pop(gpu_pool.name, None) or {})
            unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(PoolServing)})
            if unknown:
                raise _fail(f"pools.{gpu_pool.name}", unknown, "unknown keys; see PoolServing's fields")
            pools[gpu_pool.name] = dataclasses.replace(base, **changes)
            if pools[gpu_pool.name].min_replicas == 0 and (environment == "prod" or gpu_pool.role != "llm"):
                raise _fail(
                    f"pools.{gpu_pool.name}.minReplicas", 0,
                    "only a dev LLM pool may scale to zero (KEDA wakes it when voice turns arrive, after a GPU node "
                    "and a model load: minutes); the speech pool's own signals vanish at zero and nothing could "
                    "wake it, and prod keeps a pod per pool; use 1",
                )  # fmt: skip
        if pool_overrides:
            raise _fail("pools", sorted(pool_overrides), f"no such GPU pool; pools are {sorted(pools)}")
        if "nlb_source_cidrs" not in overrides and vpc_cidr:
            overrides["nlb_source_cidrs"] = (vpc_cidr,)
        if "zone_spread" not in overrides:
            overrides["zone_spread"] = "soft"
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise _fail("triton", unknown, f"unknown keys; allowed: {sorted(known)}")
        return cls(pools=pools, **overrides)


# --- the stack config's ``triton`` object ----------------------------------------------------

CONFIG_KEY = "triton-platform:triton"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def triton_overrides(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stack config's ``triton`` object (camelCase keys) -> ``TritonSettings.defaults`` overrides.

    Unknown keys fail naming the config key and the allowed ones (a typo must not fall back to a default).
    """
    top = {f.name for f in dataclasses.fields(TritonSettings)} - {"pools", "llm_variants"}
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
