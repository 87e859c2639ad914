"""GPU target: ONNX -> TensorRT plan through the TensorRT Python API, on the GPU the plan will run on.

Runs inside the NVIDIA TensorRT image of the serving Triton release (``platform_spec.versions``), started by
the Kubernetes Job runner on the target pool; ``tensorrt`` (and ``modelopt`` for Q/DQ) are imported
lazily and exist only there. Settings used: precision (builder flags, or none for strongly typed
networks), optimization profiles, workspace, builder optimization level, version and hardware
compatibility, INT8 calibration (TensorRT's entropy/min-max calibrator over a calibration set) or
explicit Q/DQ inserted by ModelOpt (INT8/FP8), and the timing cache, which is loaded from and saved
back to the store per (GPU SKU, TensorRT version). The artifact holds the plan, the build log, the
equivalent ``trtexec`` command and, for calibrated INT8, the calibration cache.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

from engines.builders.base import BuildContext, BuildError, BuildOutput, load_onnx_source
from engines.builders.tensorrt_options import tensorrt_options, timing_cache_name, trtexec_command, trtexec_line
from engines.calibration_data import CalibrationDataError, load_batches
from engines.onnx_checks import graph_inputs
from engines.spec import EngineSpec

CODE_VERSION = "trt-1"
PLAN_NAME = "model.plan"


class TensorRtBuilder:
    name = "tensorrt"
    code_version = CODE_VERSION

    def __init__(self, trt: ModuleType | None = None, compute_capability_probe=None):
        # Injected only by unit tests (a recording stand-in: TensorRT cannot be installed there).
        self._trt = trt
        self._probe = compute_capability_probe or detect_compute_capability

    def _tensorrt(self) -> ModuleType:
        if self._trt is None:
            try:
                self._trt = importlib.import_module("tensorrt")
            except ImportError:
                raise BuildError(
                    "the tensorrt builder needs the TensorRT Python package; it runs in the NVIDIA TensorRT image "
                    "(platform_spec.versions.TENSORRT_BUILD_IMAGE) through the Kubernetes runner, not on this machine"
                ) from None
        return self._trt

    def build(self, spec: EngineSpec, source: Path, ctx: BuildContext) -> BuildOutput:
        trt = self._tensorrt()
        log = ctx.log
        self._check_environment(trt, spec, ctx)
        model = load_onnx_source(spec, source, log)

        onnx_path = source
        cal = spec.settings.calibration
        batches = None
        if cal is not None:
            data = ctx.fetch(cal.data, "calibration.data_uri")
            try:
                batches = load_batches(data, list(graph_inputs(model)), cal.batches)
            except CalibrationDataError as exc:
                raise BuildError(f"calibration of {spec.model}: {exc}", log.text()) from None
            if cal.method == "modelopt":
                onnx_path = quantize_with_modelopt(spec, source, batches, ctx)

        options = tensorrt_options(spec.settings)
        cache_name = timing_cache_name(spec.target)
        plan = ctx.output_dir / PLAN_NAME
        calibration_cache = ctx.output_dir / "calibration.cache" if cal and cal.method == "calibrator" else None
        command = trtexec_command(
            spec,
            onnx_path.name,
            PLAN_NAME,
            cache_name if spec.settings.timing_cache else None,
            calibration_cache.name if calibration_cache else None,
        )
        script = "#!/bin/sh\n# Equivalent build command.\n" + trtexec_line(command) + "\n"
        (ctx.output_dir / "trtexec.sh").write_text(script)
        log.info(f"equivalent: {trtexec_line(command)}")

        logger = _collecting_logger(trt, log)
        builder = trt.Builder(logger)
        network_flags = 0
        for flag in options.network_flags:
            network_flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, flag))
        network = builder.create_network(network_flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BuildError(f"TensorRT's ONNX parser rejected {spec.model}: {errors}", log.text())

        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
        config.builder_optimization_level = options.optimization_level
        for flag in options.builder_flags:
            config.set_flag(getattr(trt.BuilderFlag, flag))
        level = getattr(trt.HardwareCompatibilityLevel, options.hardware_compatibility_level)
        config.hardware_compatibility_level = level
        profile = None
        if options.profiles:
            profile = builder.create_optimization_profile()
            for p in options.profiles:
                profile.set_shape(p.name, p.min, p.opt, p.max)
            config.add_optimization_profile(profile)
        if calibration_cache is not None:
            from engines.builders.tensorrt_calibration import make_calibrator

            config.int8_calibrator = make_calibrator(trt, batches, calibration_cache, cal.algorithm)
            if profile is not None:
                config.set_calibration_profile(profile)
            log.info(f"int8 calibration over {len(batches)} batches ({cal.algorithm})")

        cache = None
        if spec.settings.timing_cache:
            blob = ctx.store.get_blob(cache_name) or b""
            cache = config.create_timing_cache(blob)
            # ignore_mismatch=False: a cache from another GPU/version must fail loudly, never mislead.
            config.set_timing_cache(cache, False)
            log.info(f"timing cache {cache_name}: {'loaded ' + str(len(blob)) + ' bytes' if blob else 'new'}")

        log.info(f"building {spec.model}: flags {list(options.builder_flags)}, network {list(options.network_flags)}")
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            message = f"TensorRT failed to build {spec.model}; see the builder log for the failing layer"
            raise BuildError(message, log.text())
        plan.write_bytes(bytes(serialized))

        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(plan.read_bytes())
        if engine is None:
            raise BuildError(f"the plan built for {spec.model} does not deserialize on this GPU", log.text())
        log.info(f"plan {plan.stat().st_size} bytes, {engine.num_io_tensors} I/O tensors, deserializes")

        if cache is not None:
            ctx.store.put_blob(cache_name, bytes(config.get_timing_cache().serialize()))
        if onnx_path != source:
            shutil.copyfile(onnx_path, ctx.output_dir / "model.qdq.onnx")
        return BuildOutput(PLAN_NAME, {"tensorrt": trt.__version__})

    def _check_environment(self, trt: ModuleType, spec: EngineSpec, ctx: BuildContext) -> None:
        """Refuse to build with the wrong TensorRT or on the wrong GPU: the plan would not load in Triton."""
        want = spec.target.runtime_version
        if not (trt.__version__ == want or trt.__version__.startswith(want + ".")):
            raise BuildError(
                f"this builder has TensorRT {trt.__version__} but {spec.model} targets {want} (the serving Triton "
                "image's); build in platform_spec.versions.TENSORRT_BUILD_IMAGE",
                ctx.log.text(),
            )
        found = self._probe()
        if found is None:
            ctx.log.info("no nvidia-smi: GPU compute capability not verified before the build")
        elif found != spec.target.compute_capability:
            raise BuildError(
                f"this node's GPU has compute capability {found} but {spec.model} targets "
                f"{spec.target.gpu_sku} ({spec.target.compute_capability}); schedule the build on that pool",
                ctx.log.text(),
            )


def quantize_with_modelopt(spec: EngineSpec, source: Path, batches, ctx: BuildContext) -> Path:
    """Insert explicit Q/DQ nodes (INT8 or FP8) with NVIDIA ModelOpt; TensorRT then honours them."""
    from engines.calibration_data import stacked

    try:
        from modelopt.onnx.quantization import quantize
    except ImportError:
        raise BuildError(
            "calibration method 'modelopt' needs nvidia-modelopt in the build image; use the TensorRT image with "
            "the package's [tensorrt] extra installed",
            ctx.log.text(),
        ) from None
    out = ctx.workdir / "model.qdq.onnx"
    quantize(
        onnx_path=str(source),
        quantize_mode=spec.settings.precision,
        calibration_data=stacked(batches),
        calibration_method=spec.settings.calibration.algorithm,
        output_path=str(out),
        high_precision_dtype="fp16",
    )
    ctx.log.info(f"ModelOpt inserted {spec.settings.precision} Q/DQ nodes from {len(batches)} calibration batches")
    return out


def detect_compute_capability() -> str | None:
    """The first GPU's compute capability as nvidia-smi reports it ("9.0"), or None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(
        ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True, text=True, check=False
    )
    lines = result.stdout.strip().splitlines()
    return lines[0].strip() if result.returncode == 0 and lines else None


def _collecting_logger(trt: ModuleType, log):
    """A tensorrt.ILogger that keeps TensorRT's messages in the build log (warnings and up)."""

    class CollectingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if int(severity) <= int(trt.ILogger.Severity.WARNING):  # lower value = more severe
                log.extend(f"[TRT {severity.name}] {msg}")

    return CollectingLogger()
