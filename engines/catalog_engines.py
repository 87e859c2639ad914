"""Which engines a stack needs: the enabled catalog models x the GPU pools that serve them.

Pure planning (no Pulumi): ``plan_engines`` turns the models ``model_repo.catalog.select`` returned
and the stack's GPU pools into one ``PlannedEngine`` per (engine, pool), each passed through the
compatibility gate. ``infra.engine_declarations`` turns plans into ``Engine`` resources.

* Models with catalog ``engines`` (ASR, TTS, embeddings) get one TensorRT plan per engine, per pool
  whose role is the model's pool, at the model's selected precision. Optimization profiles come from
  the engine's tensors (batch from its batching, fixed dims as declared) and the catalog engine's
  ``profile`` for the dynamic ones (the catalog bounds the public model's requests by the same limits).
* LLMs get one TensorRT-LLM artifact (ModelOpt FP8 checkpoint or bf16 checkpoint + serving config)
  per LLM pool. With ``llm_variants="lora"`` a LoRA variant becomes an adapter artifact bound to its
  base model's key, and the base is prepared with LoRA serving enabled.

Sources come from the source lock (``engines.source_lock``): the catalog's URIs carry no digest for
imported checkpoints and exported graphs, the lock does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from engines.builders import spec_for
from engines.compatibility import check_compatible
from engines.source_lock import SourceLock, SourceLockError
from engines.spec import (
    BuilderSettings,
    Calibration,
    EngineSpec,
    InputProfile,
    LlmSettings,
    SourceRef,
    Target,
    content_key,
)

# Calibration text for FP8 LLM checkpoints (one sample per line), pinned in the source lock.
LLM_CALIBRATION_URI = "store://calibration/llm-fp8-calibration.txt"
LlmVariants = Literal["separate", "lora"]


class PoolLike(Protocol):
    """What planning needs from a GPU pool (``platform_spec.settings.GpuPool``)."""

    name: str
    role: str
    gpu_sku: str


class PlanError(ValueError):
    pass


@dataclass(frozen=True)
class PlannedEngine:
    model: str  # public catalog model
    engine: str  # engine name: the catalog engine, the LLM model, or "<model>_lora"
    pool: str
    spec: EngineSpec

    @property
    def key(self) -> str:
        return content_key(self.spec)

    @property
    def resource_name(self) -> str:
        return f"{self.engine}-{self.pool}"


def engine_profiles(engine: Any) -> tuple[InputProfile, ...]:
    """Optimization profiles of a catalog engine (``model_repo.catalog.CatalogEngine``)."""
    ranges = engine.profile
    batching = engine.batching
    profiles = []
    for tensor in engine.inputs:
        dims = tensor.reshape if tensor.reshape is not None else tensor.dims
        dynamic = list(ranges.get(tensor.name, ()))
        if sum(1 for d in dims if d == -1) != len(dynamic):
            raise PlanError(
                f"engine {engine.name!r} input {tensor.name!r} has dims {list(dims)} but its catalog profile gives "
                f"{len(dynamic)} range(s); give one (min, opt, max) per -1 in model_repo/catalog/models.py"
            )
        lo, opt, hi = [], [], []
        if batching.max_batch_size > 0:
            preferred = [p for p in batching.preferred_batch_sizes if p <= batching.max_batch_size]
            lo.append(1)
            opt.append(max(preferred) if preferred else batching.max_batch_size)
            hi.append(batching.max_batch_size)
        for d in dims:
            r = dynamic.pop(0) if d == -1 else (d, d, d)
            lo.append(r[0])
            opt.append(r[1])
            hi.append(r[2])
        profiles.append(InputProfile(tensor.name, tuple(lo), tuple(opt), tuple(hi)))
    return tuple(profiles)


def llm_settings(model: Any, enable_lora: bool = False, base_model_key: str | None = None) -> LlmSettings:
    """Serving limits from the model's gpu serving parameters (the catalog is the single source)."""
    params = model.target("gpu").parameters
    return LlmSettings(
        max_batch_size=int(params.get("max_inflight_requests", 64)),
        max_num_tokens=int(params.get("max_num_tokens", 8192)),
        max_seq_len=int(params.get("max_seq_len", 8192)),
        tensor_parallel_size=int(params.get("tensor_parallel_size", 1)),
        kv_cache_dtype="fp8" if model.precision_in_use == "fp8" else "auto",
        kv_cache_free_gpu_memory_fraction=float(params.get("kv_cache_free_gpu_memory_fraction", 0.85)),
        enable_lora=enable_lora,
        base_model_key=base_model_key,
    )


class _Pins:
    """Source lookups that record every missing pin, so one preview lists all sources still to import."""

    def __init__(self, lock: SourceLock):
        self.lock = lock
        self.missing: list[str] = []
        self.missing_uris: set[str] = set()

    def get(self, uri: str, fmt: str, needed_by: str) -> SourceRef | None:
        try:
            return self.lock.resolve(uri, fmt, needed_by)
        except SourceLockError as exc:
            self.missing.append(str(exc))
            self.missing_uris.add(uri)
            return None


def plan_engines(
    models: Iterable[Any],
    pools: Iterable[PoolLike],
    lock: SourceLock,
    llm_variants: LlmVariants = "separate",
) -> list[PlannedEngine]:
    """One PlannedEngine per (engine, pool serving it); raises PlanError/SourceLockError/EngineCompatibilityError."""
    pins = _Pins(lock)
    models, pools = list(models), list(pools)
    plans = _plans(models, pools, pins, llm_variants)
    if pins.missing:
        listed = "\n".join(f"  - {m}" for m in sorted(set(pins.missing)))
        raise SourceLockError(f"sources without a pinned digest:\n{listed}")
    for plan in plans:
        pool = next(p for p in pools if p.name == plan.pool)
        check_compatible(plan.spec, pool.name, pool.gpu_sku)
    return plans


def unpinned_sources(
    models: Iterable[Any], pools: Iterable[PoolLike], lock: SourceLock, llm_variants: LlmVariants = "separate"
) -> list[str]:
    """The catalog URIs the stack's engines build from that ``lock`` does not pin yet (what to import)."""
    pins = _Pins(lock)
    _plans(list(models), list(pools), pins, llm_variants)
    return sorted(pins.missing_uris)


def _plans(models: list[Any], pools: list[PoolLike], pins: _Pins, llm_variants: LlmVariants) -> list[PlannedEngine]:
    by_name = {m.name: m for m in models}
    lora_bases = {m.lora.base for m in models if llm_variants == "lora" and m.lora is not None}
    plans: list[PlannedEngine] = []
    for model in models:
        serving_pools = [p for p in pools if p.role == model.pool]
        if (model.engines or model.role == "llm") and not serving_pools:
            raise PlanError(f"model {model.name!r} runs on the {model.pool!r} pool, but the stack has no such GPU pool")
        for pool in serving_pools:
            if model.role == "llm":
                plans.append(_plan_llm(model, pool, pins, by_name, lora_bases, llm_variants))
            for engine in model.engines:
                source = pins.get(engine.source.uri, "onnx", f"engine {engine.name!r} of {model.name!r}")
                spec = spec_for(
                    engine.name,
                    "tensorrt",
                    source,
                    Target.for_gpu(pool.gpu_sku, "tensorrt"),
                    BuilderSettings(precision=model.precision_in_use, profiles=engine_profiles(engine)),
                )
                plans.append(PlannedEngine(model.name, engine.name, pool.name, spec))
    return plans


def _plan_llm(model, pool, pins: _Pins, by_name, lora_bases, llm_variants) -> PlannedEngine:
    """The LLM artifact of ``model`` on ``pool`` (a placeholder source where a pin is missing: the
    caller raises with every missing pin before any plan is used)."""
    target = Target.for_gpu(pool.gpu_sku, "tensorrt_llm")
    calibration = None
    if model.precision_in_use == "fp8":
        data = pins.get(LLM_CALIBRATION_URI, "calibration", f"fp8 calibration of {model.name!r}")
        calibration = Calibration("modelopt", data)
    if llm_variants == "lora" and model.lora is not None:
        base = by_name.get(model.lora.base)
        if base is None:
            raise PlanError(
                f"model {model.name!r} is a LoRA variant of {model.lora.base!r}, which is not enabled; enable it "
                "or use llm_variants 'separate'"
            )
        base_plan = _plan_llm(base, pool, pins, by_name, lora_bases, llm_variants)
        base_key = base_plan.key if base_plan.spec.source is not None else None
        spec = spec_for(
            f"{model.name}_lora",
            "lora",
            pins.get(model.lora.adapter.uri, "lora_adapter", f"LoRA adapter of {model.name!r}"),
            target,
            BuilderSettings(
                precision=base.precision_in_use,
                llm=llm_settings(base, enable_lora=True, base_model_key=base_key),
            ),
        )
        return PlannedEngine(model.name, f"{model.name}_lora", pool.name, spec)
    spec = spec_for(
        model.name,
        "tensorrt_llm",
        pins.get(model.source.uri, "hf_checkpoint", f"checkpoint of {model.name!r}"),
        target,
        BuilderSettings(
            precision=model.precision_in_use,
            calibration=calibration,
            llm=llm_settings(model, enable_lora=model.name in lora_bases),
        ),
    )
    return PlannedEngine(model.name, model.name, pool.name, spec)
