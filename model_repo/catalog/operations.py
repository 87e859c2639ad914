"""What the program and the CLIs do with the catalog: validate, select, check, describe."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from model_repo.catalog.models import (
    _PY,
    CATALOG,
)
from model_repo.catalog.schema import (
    ROLES,
    TARGETS,
    TRITON_DTYPES,
    Batching,
    CatalogError,
    ModelSelectionLike,
    ModelSpec,
    Tensor,
)
from platform_spec import gpus

# --- validation of the catalog itself -------------------------------------------------------------


def validate_spec(spec: ModelSpec) -> None:
    """Structural checks the renderer relies on; raise CatalogError naming the model and the problem."""
    where = f"model {spec.name!r}"
    if spec.role not in ROLES:
        raise CatalogError(f"{where}: role {spec.role!r} is not one of {list(ROLES)}")
    if spec.precision.default not in spec.precision.allowed:
        raise CatalogError(f"{where}: default precision {spec.precision.default!r} not in {spec.precision.allowed}")
    if sorted(spec.serving) != sorted(TARGETS):
        raise CatalogError(f"{where}: needs a Serving for each target {list(TARGETS)}, has {sorted(spec.serving)}")
    if spec.decoupled and spec.batching.max_batch_size:
        # A streaming model keeps one response sender per request; Triton batching would only add delay.
        raise CatalogError(f"{where}: decoupled models use max_batch_size 0")
    tensors = [*spec.inputs, *spec.outputs]
    for engine in spec.engines:
        tensors += [*engine.inputs, *engine.outputs]
        _check_batching(f"engine {engine.name!r} of {where}", engine.batching)
    for tensor in tensors:
        _check_tensor(where, tensor)
    _check_batching(where, spec.batching)
    for target, serving in spec.serving.items():
        if (serving.backend is None) == (serving.platform is None):
            raise CatalogError(f"{where}, target {target}: set exactly one of backend / platform")
        if serving.backend == _PY and not serving.python_model:
            raise CatalogError(f"{where}, target {target}: a Python-backend model needs python_model")
        if serving.instance_group.count < 1:
            raise CatalogError(f"{where}, target {target}: instance count must be >= 1")
        if serving.instance_group.gpus and serving.instance_group.kind != "KIND_GPU":
            raise CatalogError(f"{where}, target {target}: a gpus list needs KIND_GPU")
        if target == "cpu" and serving.instance_group.kind != "KIND_CPU":
            raise CatalogError(f"{where}: the cpu target runs KIND_CPU only")
        if serving.batching is not None:
            _check_batching(f"{where}, target {target}", serving.batching)
        for file_name in serving.files:
            # A plain name: the file lands next to model.py, where the model looks for it.
            if not file_name or file_name.startswith(".") or "/" in file_name or "\\" in file_name:
                raise CatalogError(f"{where}, target {target}: files entry {file_name!r} must be a plain file name")


def _check_tensor(where: str, tensor: Tensor) -> None:
    if tensor.dtype not in TRITON_DTYPES:
        raise CatalogError(f"{where}: tensor {tensor.name!r} dtype {tensor.dtype!r} is not a Triton type")
    if not tensor.dims or any(d == 0 or d < -1 for d in tensor.dims):
        raise CatalogError(f"{where}: tensor {tensor.name!r} dims {list(tensor.dims)}: use positive sizes or -1")


def _check_batching(where: str, batching: Batching) -> None:
    if batching.max_batch_size < 0:
        raise CatalogError(f"{where}: max_batch_size {batching.max_batch_size} must be >= 0")
    bad = [p for p in batching.preferred_batch_sizes if not 1 <= p <= batching.max_batch_size]
    if bad:
        raise CatalogError(
            f"{where}: preferred batch sizes {bad} are outside 1..max_batch_size {batching.max_batch_size}"
        )
    if batching.max_queue_delay_us < 0:
        raise CatalogError(f"{where}: max_queue_delay_us {batching.max_queue_delay_us} must be >= 0")


for _spec in CATALOG.values():
    validate_spec(_spec)


# --- stack selection ------------------------------------------------------------------------------


def select(selections: Mapping[str, ModelSelectionLike] | None) -> list[ModelSpec]:
    """The enabled models for a stack, each with its precision resolved, dependencies first.

    ``selections`` maps catalog name -> object with ``.enabled`` / ``.precision`` (``settings.models``).
    A model absent from it takes its catalog default (``enabled_by_default``, default precision).
    Raises CatalogError for an unknown name, a precision the model does not allow, or an enabled model
    whose BLS dependency is disabled.
    """
    selections = selections or {}
    problems: list[str] = []
    for name in selections:
        if name not in CATALOG:
            problems.append(f"models.{name}: unknown model; catalog models are {sorted(CATALOG)}")
    chosen: dict[str, ModelSpec] = {}
    for name, spec in CATALOG.items():
        sel = selections.get(name)
        enabled = spec.enabled_by_default if sel is None else bool(sel.enabled)
        precision = None if sel is None else sel.precision
        if precision is not None and precision not in spec.precision.allowed:
            problems.append(
                f"models.{name}.precision = {precision!r}: not allowed for {name}; "
                f"use one of {list(spec.precision.allowed)} (default {spec.precision.default!r})"
            )
            continue
        if enabled:
            chosen[name] = dataclasses.replace(spec, precision_selected=precision or spec.precision.default)
    for spec in chosen.values():
        for dep in spec.depends_on:
            if dep not in chosen:
                problems.append(
                    f"models.{dep}.enabled = false: {spec.name} calls {dep}; enable {dep} or disable {spec.name}"
                )
    if problems:
        raise CatalogError("invalid model selection:\n" + "\n".join(f"  - {p}" for p in problems))
    return _dependency_order(chosen)


def _dependency_order(specs: Mapping[str, ModelSpec]) -> list[ModelSpec]:
    ordered: list[ModelSpec] = []
    seen: set[str] = set()

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in stack:
            raise CatalogError(f"dependency cycle: {' -> '.join((*stack, name))}")
        for dep in specs[name].depends_on:
            visit(dep, (*stack, name))
        seen.add(name)
        ordered.append(specs[name])

    for name in specs:
        visit(name, ())
    return ordered


def check_precision_for_gpu(spec: ModelSpec, gpu_sku: str) -> None:
    """FP8 needs FP8 tensor cores (Ada/Hopper); raise CatalogError naming model, precision and SKU."""
    sku = gpus.GPU_SKUS.get(gpu_sku)
    if sku is None:
        raise CatalogError(f"model {spec.name!r}: unknown GPU SKU {gpu_sku!r}; use one of {sorted(gpus.GPU_SKUS)}")
    if spec.precision_in_use == "fp8" and not sku.fp8:
        fp8 = sorted(s.name for s in gpus.GPU_SKUS.values() if s.fp8)
        alternatives = [p for p in spec.precision.allowed if p != "fp8"]
        raise CatalogError(
            f"model {spec.name!r}: precision fp8 needs FP8 tensor cores, which {gpu_sku} lacks; "
            f"use a pool of {fp8} or precision {alternatives}"
        )


def serving_precision(spec: ModelSpec, target: str) -> str:
    """The precision a target runs: the selection on gpu; the cpu target runs fp32 (ONNX Runtime / PyTorch
    on CPU); orchestration-only models have none."""
    if spec.precision.allowed == ("none",):
        return "none"
    return spec.precision_in_use if target == "gpu" else "fp32"


def gpu_memory_by_pool(specs: Iterable[ModelSpec]) -> dict[str, int]:
    """Estimated GPU memory (MiB) per GPU of each pool on the gpu target.

    A model's estimate covers one instance of everything it runs on the GPU (the LLM instance, or one
    instance of each of its engines); more instances per GPU multiply it. Models that run on CPU
    count 0. Compare against the pool SKU's memory (``platform_spec.gpus``) before deploying.
    """
    totals: dict[str, int] = {}
    for spec in specs:
        group = spec.target("gpu").instance_group
        if spec.engines:
            instances = max(e.instance_group.count for e in spec.engines)
        elif group.kind == "KIND_GPU":
            instances = group.count
        else:
            instances = 0
        totals[spec.pool] = totals.get(spec.pool, 0) + spec.gpu_memory_estimate_mib * instances
    return totals


def effective_batching(spec: ModelSpec, target: str) -> Batching:
    """The batching a target actually renders (a target's override wins over the public default)."""
    return spec.target(target).batching or spec.batching


def describe(spec: ModelSpec, target: str) -> dict[str, Any]:
    """A plain summary for CLIs, manifests and dashboards."""
    serving = spec.target(target)
    return {
        "name": spec.name,
        "role": spec.role,
        "pool": spec.pool,
        "weights": serving.weights,
        "precision": serving_precision(spec, target),
        "decoupled": spec.decoupled,
        "source": spec.source.uri,
        "latency_slo_p99_ms": spec.latency_slo_p99_ms,
        "gpu_memory_mib": spec.gpu_memory_estimate_mib if target == "gpu" else 0,
    }


def catalog_json() -> str:
    return json.dumps({name: describe(spec, "gpu") for name, spec in CATALOG.items()}, indent=2)
