"""The compatibility gate: an engine may only be deployed where it deserializes.

A TensorRT plan loads only under the TensorRT version that built it and only on GPUs of the compute
capability it was built for ("Serialized Engine Version mismatch", "generated on an incompatible
device" are the failures this prevents). The gate compares an engine's target with the pool it is
deployed to (GPU SKU -> compute capability, ``platform_spec.gpus``) and the runtime inside the serving image
(``platform_spec.versions``), and fails with a message naming the engine, both sides and the fix. The program
calls it while declaring engines, so a mismatch stops ``pulumi preview`` before anything is built.
"""

from __future__ import annotations

from engines.spec import EngineSpec
from platform_spec import gpus, versions


class EngineCompatibilityError(ValueError):
    pass


def _cc(value: str) -> tuple[int, int]:
    major, minor = value.split(".")
    return int(major), int(minor)


def _same_release(built: str, serving: str) -> bool:
    return serving == built or serving.startswith(built + ".") or built.startswith(serving + ".")


def serving_runtime_version(runtime: str) -> str | None:
    """The runtime version inside the pinned serving images, per runtime."""
    return {"tensorrt": versions.TENSORRT_VERSION, "tensorrt_llm": versions.TENSORRT_LLM_VERSION}.get(runtime)


def compatibility_problems(
    spec: EngineSpec,
    pool_name: str,
    pool_gpu_sku: str,
    serving_version: str | None = None,
) -> list[str]:
    """Every reason ``spec``'s artifact would not load on ``pool_name`` under the serving image."""
    t, s = spec.target, spec.settings
    where = f"engine {spec.model!r} on pool {pool_name!r}"
    if t.runtime == "onnxruntime":
        return [f"{where}: it is a CPU (ONNX Runtime) artifact; GPU pools serve tensorrt/tensorrt_llm engines"]
    sku = gpus.GPU_SKUS.get(pool_gpu_sku)
    if sku is None:
        return [f"{where}: pool GPU SKU {pool_gpu_sku!r} is unknown to platform_spec/gpus.py"]
    problems = []
    serving = serving_version or serving_runtime_version(t.runtime)
    if t.runtime == "tensorrt":
        if s.version_compatible:
            # A version-compatible plan loads on the same or a later TensorRT of the same major version.
            built, run = t.runtime_version.split("."), (serving or "").split(".")
            ok = built[0] == run[0] and tuple(map(int, run[:3])) >= tuple(map(int, built[:3]))
        else:
            ok = serving is not None and _same_release(t.runtime_version, serving)
        if not ok:
            problems.append(
                f"{where}: built for TensorRT {t.runtime_version} but the serving image runs TensorRT {serving} "
                f"({versions.TRITON_IMAGE}); rebuild the engine for the serving release "
                "(bump both in platform_spec/versions.py)"
            )
        cc_ok = t.compute_capability == sku.compute_capability or (
            s.hardware_compatibility == "ampere_plus" and _cc(sku.compute_capability) >= (8, 0)
        )
        if not cc_ok:
            problems.append(
                f"{where}: built for compute capability {t.compute_capability} ({t.gpu_sku}) but pool "
                f"{pool_name!r} has {sku.name} ({sku.compute_capability}); build the engine for the pool's SKU, "
                "or use hardware_compatibility 'ampere_plus'"
            )
        elif t.gpu_sku != sku.name and s.hardware_compatibility == "none":
            # Same architecture, other SKU: it loads, but TensorRT timed its tactics on another GPU.
            problems.append(
                f"{where}: built on {t.gpu_sku} but pool {pool_name!r} runs {sku.name} (same compute capability "
                f"{sku.compute_capability}); build per SKU, or set hardware_compatibility 'same_compute_capability'"
            )
    elif t.runtime == "tensorrt_llm" and (serving is None or not _same_release(t.runtime_version, serving)):
        problems.append(
            f"{where}: prepared for TensorRT-LLM {t.runtime_version} but the serving image runs {serving} "
            f"({versions.TRITON_TRTLLM_IMAGE}); rebuild for the serving release"
        )
    if s.precision == "fp8" and not sku.fp8:
        reason = f"fp8 needs FP8 tensor cores; {sku.name} has none (use bf16/fp16 or an Ada/Hopper pool)"
        problems.append(f"{where}: {reason}")
    if s.precision == "bf16" and _cc(sku.compute_capability) < (8, 0):
        problems.append(f"{where}: bf16 needs compute capability >= 8.0; {sku.name} is {sku.compute_capability}")
    return problems


def check_compatible(spec: EngineSpec, pool_name: str, pool_gpu_sku: str, serving_version: str | None = None) -> None:
    """Raise EngineCompatibilityError listing every problem (see ``compatibility_problems``)."""
    problems = compatibility_problems(spec, pool_name, pool_gpu_sku, serving_version)
    if problems:
        raise EngineCompatibilityError("engine/pool mismatch:\n" + "\n".join(f"  - {p}" for p in problems))
