"""Pure mapping from builder settings to TensorRT's flags, profiles and the equivalent ``trtexec`` line.

Kept free of any TensorRT import so the mapping is unit-tested on machines without a GPU; the
builder (``tensorrt_builder``) applies exactly these names to the real API.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from engines.spec import BuilderSettings, EngineSpec, InputProfile, Target

# Precision -> BuilderFlag names for a weakly typed network. Lower precisions keep FP16 enabled so
# layers without an int8/fp8 kernel (or outside the Q/DQ regions) fall back to fp16, not fp32.
_PRECISION_FLAGS = {
    "fp32": (),
    "fp16": ("FP16",),
    "bf16": ("BF16",),
    "int8": ("INT8", "FP16"),
    "fp8": ("FP8", "FP16"),
}
_HARDWARE_LEVEL = {
    "none": "NONE",
    "ampere_plus": "AMPERE_PLUS",
    "same_compute_capability": "SAME_COMPUTE_CAPABILITY",
}
_TRTEXEC_HARDWARE_LEVEL = {"ampere_plus": "ampere+", "same_compute_capability": "sameComputeCapability"}
_TRTEXEC_PRECISION = {"fp16": "--fp16", "bf16": "--bf16", "int8": "--int8", "fp8": "--fp8"}


@dataclass(frozen=True)
class TensorRtOptions:
    builder_flags: tuple[str, ...]  # tensorrt.BuilderFlag member names
    network_flags: tuple[str, ...]  # tensorrt.NetworkDefinitionCreationFlag member names
    hardware_compatibility_level: str  # tensorrt.HardwareCompatibilityLevel member name
    workspace_bytes: int
    optimization_level: int
    profiles: tuple[InputProfile, ...]


def tensorrt_options(settings: BuilderSettings) -> TensorRtOptions:
    flags: list[str] = []
    if settings.strongly_typed:
        # A strongly typed network takes every tensor's type from the ONNX (casts, Q/DQ); TensorRT
        # rejects precision flags on it, so none are set.
        network_flags: tuple[str, ...] = ("STRONGLY_TYPED",)
    else:
        network_flags = ()
        flags.extend(_PRECISION_FLAGS[settings.precision])
    if settings.version_compatible:
        flags.append("VERSION_COMPATIBLE")
    return TensorRtOptions(
        builder_flags=tuple(flags),
        network_flags=network_flags,
        hardware_compatibility_level=_HARDWARE_LEVEL[settings.hardware_compatibility],
        workspace_bytes=settings.workspace_mib * 1024 * 1024,
        optimization_level=settings.optimization_level,
        profiles=settings.profiles,
    )


def timing_cache_name(target: Target) -> str:
    """One timing cache per (GPU SKU, TensorRT version): timings measured elsewhere would mislead."""
    cc = (target.compute_capability or "").replace(".", "")
    return f"{target.gpu_sku}-sm{cc}-trt{target.runtime_version}.cache"


def _shape_spec(profiles: tuple[InputProfile, ...], which: str) -> str:
    parts = []
    for p in profiles:
        # trtexec splits on ':' and ','; names holding either are wrapped in single quotes.
        name = f"'{p.name}'" if (":" in p.name or "," in p.name) else p.name
        parts.append(f"{name}:{'x'.join(str(d) for d in getattr(p, which))}")
    return ",".join(parts)


def trtexec_command(
    spec: EngineSpec,
    onnx_path: str,
    plan_path: str,
    timing_cache_path: str | None = None,
    calibration_cache_path: str | None = None,
) -> list[str]:
    """The ``trtexec`` invocation that builds the same engine as the Python API path.

    The INT8 entropy calibrator is Python code trtexec cannot run; it reads the calibration cache
    the API build wrote (``--calib``), which reproduces the same scales.
    """
    s = spec.settings
    cmd = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={plan_path}", "--skipInference"]
    if s.strongly_typed:
        cmd.append("--stronglyTyped")
    elif s.precision in _TRTEXEC_PRECISION:
        cmd.append(_TRTEXEC_PRECISION[s.precision])
        if s.precision in ("int8", "fp8"):
            cmd.append("--fp16")
    if s.profiles:
        for which in ("min", "opt", "max"):
            cmd.append(f"--{which}Shapes={_shape_spec(s.profiles, which)}")
    cmd.append(f"--memPoolSize=workspace:{s.workspace_mib}")
    cmd.append(f"--builderOptimizationLevel={s.optimization_level}")
    if s.timing_cache and timing_cache_path:
        cmd.append(f"--timingCacheFile={timing_cache_path}")
    if s.version_compatible:
        cmd.append("--versionCompatible")
    if s.hardware_compatibility in _TRTEXEC_HARDWARE_LEVEL:
        cmd.append(f"--hardwareCompatibilityLevel={_TRTEXEC_HARDWARE_LEVEL[s.hardware_compatibility]}")
    if calibration_cache_path and s.precision == "int8" and not s.strongly_typed:
        cmd.append(f"--calib={calibration_cache_path}")
    return cmd


def trtexec_line(cmd: list[str]) -> str:
    return shlex.join(cmd)
