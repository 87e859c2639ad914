"""The stack plan: everything the program derives from the settings, computed once per run.

``plan_stack(settings)`` selects the catalog's models, loads the engine source lock, plans every
engine (key inputs, compatibility with the pools' GPUs), checks that the pools and the models fit
each other and derives the alert thresholds. Anything that can reject the stack's config fails
here, before the first resource is declared. Components receive the parts they use; none of them
re-derives a part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

from engines.build_resources import BuildResources, build_resources
from engines.catalog_engines import PlannedEngine, plan_engines
from engines.source_lock import SourceLock, load_lock
from infra.monitoring.slos import LatencySlos
from model_repo import catalog
from platform_spec import gpus
from platform_spec.llm_memory import PoolMemoryPlan, plan_pool
from platform_spec.quantities import quantity
from platform_spec.serving import TritonSettings
from platform_spec.settings import REPO_ROOT, GpuPool, Settings, SettingsError


class TritonConfigError(ValueError):
    """The stack cannot be served as configured; the message names the setting and the fix."""


@dataclass(frozen=True)
class StackPlan:
    settings: Settings
    models: tuple[catalog.ModelSpec, ...]  # the enabled models, in dependency order
    gpu_specs: tuple[catalog.ModelSpec, ...]  # the same with the gpu overrides (what Triton serves)
    lock: SourceLock  # catalog source URI -> pinned store bytes
    engines: tuple[PlannedEngine, ...]  # one per (engine, GPU pool serving it)
    slos: LatencySlos
    llm_memory: tuple[PoolMemoryPlan, ...] = ()  # per LLM pool: the models on its GPU and their memory

    @property
    def serving(self) -> TritonSettings:
        return self.settings.serving


def plan_stack(settings: Settings) -> StackPlan:
    models = tuple(catalog.select(settings.models))
    served = gpu_specs(models)
    check_pools(settings, served)  # pools and models fit each other before any source is looked up
    lock = load_lock(REPO_ROOT / settings.engines.sources_lock)
    engines = tuple(plan_engines(models, settings.gpu_pools, lock, settings.llm_variants))
    check_builds_fit(engines, settings.gpu_pools)
    check_serving_fits(settings)
    llm_memory = plan_llm_memory(settings, served)
    served = with_kv_budgets(served, llm_memory)  # each LLM serves with the KV budget its GPU's plan derived
    # Last of the checks: the values only the team can know (admins, the deployer's network path), after
    # the engine sources, whose bootstrap creates the store these values are needed for.
    blockers = settings.deploy_blockers()
    if blockers:
        raise SettingsError("stack config (what only your team can set before the first preview)", blockers)
    return StackPlan(settings, models, served, lock, engines, latency_slos(models), llm_memory)


def gpu_specs(models: Sequence[catalog.ModelSpec]) -> tuple[catalog.ModelSpec, ...]:
    """The models with their gpu overrides, exactly as ``python -m model_repo render`` selects them."""
    return tuple(catalog.apply_overrides(models, "gpu", catalog.load_overrides("gpu")))


def check_builds_fit(engines: Sequence[PlannedEngine], pools: Sequence[GpuPool]) -> None:
    """Every engine build fits every instance type of its pool (the autoscaler may launch any of them),
    after the kubelet's and the DaemonSets' share; otherwise the build Job would wait for a node forever."""
    by_name = {p.name: p for p in pools}
    problems = []
    for engine in engines:
        pool = by_name[engine.pool]
        need = build_resources(engine.spec)
        nodes = [gpus.allocatable(t, pool.disk_size_gib) for t in pool.instance_types]
        short = [n for n in nodes if not _fits(need, n)]
        if short:
            largest = max(nodes, key=lambda n: (n.memory_mib, n.cpu_millicores, n.ephemeral_gib))
            problems.append(
                f"engine {engine.engine!r} on GPU pool {pool.name!r} needs {need.describe()} to build; "
                f"{', '.join(n.describe() for n in short)} cannot hold it (largest node of the pool: "
                f"{largest.describe()}). Use larger instanceTypes or a larger diskSizeGib for gpuPools[{pool.name}]"
            )
    if problems:
        raise TritonConfigError("engine builds fit no node:\n" + "\n".join(f"  - {p}" for p in problems))


def check_serving_fits(settings: Settings) -> None:
    """Each pool's Triton pod (serving settings) fits every instance type of the pool, GPUs included."""
    problems = []
    for pool in settings.gpu_pools:
        serving = settings.serving.pool(pool.name)
        # What the scheduler counts: requests (its /dev/shm is memory-backed and lives inside the memory limit).
        need = (
            quantity(serving.cpu) * 1000,
            quantity(serving.memory) / 2**20,
            quantity(serving.ephemeral_storage) / 2**30,
        )
        for instance_type in pool.instance_types:
            node = gpus.allocatable(instance_type, pool.disk_size_gib)
            if (need[0] > node.cpu_millicores or need[1] > node.memory_mib or need[2] > node.ephemeral_gib
                    or serving.gpus > node.gpus):  # fmt: skip
                problems.append(
                    f"triton.pools.{pool.name}: a pod asks {serving.cpu} CPU, {serving.memory} memory, "
                    f"{serving.ephemeral_storage} ephemeral storage, {serving.gpus} GPU(s); "
                    f"{node.describe()} with {node.gpus} GPU(s) cannot hold it. Lower the pod's size "
                    f"(triton.pools.{pool.name}) or use larger instanceTypes for gpuPools[{pool.name}]"
                )
    if problems:
        raise TritonConfigError("Triton pods fit no node:\n" + "\n".join(f"  - {p}" for p in problems))


def plan_llm_memory(settings: Settings, served: Sequence[catalog.ModelSpec]) -> tuple[PoolMemoryPlan, ...]:
    """Each LLM pool's GPU holds every LLM instance placed on it (platform_spec.llm_memory); otherwise the second
    model's KV cache would not fit and its pod would restart forever. In ``llm_variants: lora`` mode a LoRA variant
    is an adapter of its base, not a model of its own."""
    llms = [m for m in served if m.role == "llm" and not (settings.llm_variants == "lora" and m.lora is not None)]
    plans, problems = [], []
    for pool in settings.gpu_pools:
        placed = [m for m in llms if m.pool == pool.role]
        if not placed:
            continue
        plan = plan_pool(pool.name, pool.gpu_sku, [
            (m.name, m.precision_in_use, int(m.target("gpu").parameters["max_seq_len"]),
             int(m.target("gpu").parameters["kv_cache_max_tokens"]))
            for m in placed
        ])  # fmt: skip
        plans.append(plan)
        if not plan.fits:
            problems.append(
                f"{plan.describe()}: over the {plan.usable_gib:.1f} GiB usable even with the fewest KV tokens (one "
                f"full-length sequence each). Use a GPU with more memory "
                f"(gpuPools[{pool.name}].gpuSku and instanceTypes), FP8 precision where the GPU has it, or "
                "llmVariants: lora (one base model serves both variants)"
            )
    if problems:
        raise TritonConfigError("LLM models do not fit their GPU:\n" + "\n".join(f"  - {p}" for p in problems))
    return tuple(plans)


def _fits(need: BuildResources, node: gpus.NodeCapacity) -> bool:
    return (
        need.cpu_millicores <= node.cpu_millicores
        and need.memory_mib <= node.memory_mib
        and need.scratch_gib <= node.ephemeral_gib
        and node.gpus >= 1
    )


def latency_slos(models: Sequence[catalog.ModelSpec]) -> LatencySlos:
    """Alert thresholds per role: the tightest p99 SLO the catalog gives a model of that role."""

    def tightest(role: str) -> float:
        return min(m.latency_slo_p99_ms for m in models if m.role == role) / 1000

    return LatencySlos(
        asr_p99_seconds=tightest("asr"), tts_p99_seconds=tightest("tts"), llm_p99_seconds=tightest("llm")
    )


def check_pools(settings: Settings, specs: Sequence[catalog.ModelSpec]) -> None:
    """Every pool role has models, and each pool's GPU can run its models' precision (FP8 needs Ada/Hopper)."""
    problems = []
    for pool in settings.gpu_pools:
        for spec in (s for s in specs if s.pool == pool.role):
            try:
                catalog.check_precision_for_gpu(spec, pool.gpu_sku)
            except catalog.CatalogError as exc:
                problems.append(f"gpuPools[{pool.name}]: {exc}")
    for pool in settings.gpu_pools:
        if not any(s.pool == pool.role for s in specs):
            problems.append(
                f"GPU pool {pool.name!r} (role {pool.role}) serves no enabled model; enable a {pool.role} model "
                "in the stack's `models` config or remove the pool"
            )
    roles = {p.role for p in settings.gpu_pools}
    orphans = sorted({s.name for s in specs if s.pool not in roles})
    if orphans:
        problems.append(
            f"models {orphans} run on pool role(s) {sorted({s.pool for s in specs if s.name in orphans})} but "
            f"gpuPools has none; add such a pool or disable them in `models`"
        )
    if problems:
        raise TritonConfigError("Triton cannot serve this stack:\n" + "\n".join(f"  - {p}" for p in problems))


def with_kv_budgets(
    specs: Sequence[catalog.ModelSpec], plans: Sequence[PoolMemoryPlan]
) -> tuple[catalog.ModelSpec, ...]:
    """The specs with each LLM's ``kv_cache_max_tokens`` set to the budget its pools' memory plans derived (the
    smallest, where several pools with different GPUs serve one model: the repository is one for all pools)."""
    budgets: dict[str, int] = {}
    for plan in plans:
        for model in plan.models:
            budgets[model.model] = min(budgets.get(model.model, model.kv_tokens), model.kv_tokens)
    out = []
    for spec in specs:
        if spec.name in budgets:
            gpu = spec.target("gpu")
            parameters = MappingProxyType({**gpu.parameters, "kv_cache_max_tokens": str(budgets[spec.name])})
            serving = MappingProxyType({**spec.serving, "gpu": dataclasses.replace(gpu, parameters=parameters)})
            spec = dataclasses.replace(spec, serving=serving)
        out.append(spec)
    return tuple(out)
