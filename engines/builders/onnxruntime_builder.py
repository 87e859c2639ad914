"""CPU target: ONNX -> optimized ONNX through ONNX Runtime, the engine the CPU stacks serve.

Runs for real on any machine, so the whole engine lifecycle (key, build, publish, adopt, refresh,
delete) is exercised without a GPU. Settings used: ``precision`` (fp32; fp16 by weight/activation
conversion with fp32 I/O kept; int8 by dynamic quantization, or static with a calibration set),
``optimization_level`` (0 none, 1 basic, >= 2 extended) and ``profiles`` (shapes of the parity check).
The optimized model is checked against the source on the same inputs before it is accepted.
"""

from __future__ import annotations

from pathlib import Path

from engines.builders.base import BuildContext, BuildError, BuildOutput, load_onnx_source
from engines.calibration_data import CalibrationDataError, load_batches
from engines.onnx_checks import (
    compare,
    graph_inputs,
    run_onnx,
    sample_inputs,
)
from engines.spec import EngineSpec

CODE_VERSION = "ort-1"
ARTIFACT_NAME = "model.onnx"


class OnnxRuntimeBuilder:
    name = "onnxruntime"
    code_version = CODE_VERSION

    def build(self, spec: EngineSpec, source: Path, ctx: BuildContext) -> BuildOutput:
        import onnx
        import onnxruntime as ort

        log = ctx.log
        model = load_onnx_source(spec, source, log)
        log.info(f"loaded {source.name}: inputs {graph_inputs(model)}")

        stage = source
        precision = spec.settings.precision
        if precision == "fp16":
            stage = self._to_fp16(model, ctx.workdir / "fp16.onnx")
            log.info("converted weights and activations to fp16 (inputs and outputs stay fp32)")
        elif precision == "int8":
            stage = self._to_int8(spec, source, model, ctx)

        out = ctx.output_dir / ARTIFACT_NAME
        options = ort.SessionOptions()
        options.graph_optimization_level = _ort_level(spec.settings.optimization_level)
        options.optimized_model_filepath = str(out)
        options.log_severity_level = 3
        try:
            ort.InferenceSession(str(stage), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001  (ORT raises its own Fail/InvalidGraph types)
            raise BuildError(f"ONNX Runtime could not load {spec.model} at {precision}: {exc}", log.text()) from None
        level = options.graph_optimization_level.name
        log.info(f"optimized at level {level} -> {out.name} ({out.stat().st_size} bytes)")

        self._check_parity(spec, source, out, model, ctx)
        return BuildOutput(ARTIFACT_NAME, {"onnxruntime": ort.__version__, "onnx": onnx.__version__})

    @staticmethod
    def _to_fp16(model, path: Path) -> Path:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        # keep_io_types: clients keep sending fp32; the casts sit inside the graph.
        onnx.save(convert_float_to_float16(model, keep_io_types=True), str(path))
        return path

    @staticmethod
    def _to_int8(spec: EngineSpec, source: Path, model, ctx: BuildContext) -> Path:
        from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_dynamic, quantize_static

        path = ctx.workdir / "int8.onnx"
        cal = spec.settings.calibration
        if cal is None:
            # Dynamic quantization: int8 weights, activation scales computed per batch at run time.
            quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8)
            ctx.log.info("quantized weights to int8 (dynamic activation scales)")
            return path
        data = ctx.fetch(cal.data, "calibration.data_uri")
        try:
            batches = load_batches(data, list(graph_inputs(model)), cal.batches)
        except CalibrationDataError as exc:
            raise BuildError(f"calibration of {spec.model}: {exc}", ctx.log.text()) from None

        class Reader(CalibrationDataReader):
            def __init__(self):
                self._it = iter(batches)

            def get_next(self):
                return next(self._it, None)

        from onnxruntime.quantization import CalibrationMethod

        method = CalibrationMethod.Entropy if cal.algorithm == "entropy" else CalibrationMethod.MinMax
        quantize_static(str(source), str(path), Reader(), calibrate_method=method)
        ctx.log.info(f"quantized to int8 with static scales from {len(batches)} calibration batches ({cal.algorithm})")
        return path

    @staticmethod
    def _check_parity(spec: EngineSpec, source: Path, built: Path, model, ctx: BuildContext) -> None:
        feeds = sample_inputs(model, spec.settings.profiles)
        try:
            names, reference = run_onnx(source, feeds)
        except Exception as exc:  # noqa: BLE001
            # The source itself rejects generated inputs (e.g. an input that must be a sample rate):
            # parity cannot be judged from random data, so say so instead of guessing.
            ctx.log.info(f"parity not checked: the source model rejects generated inputs ({exc})")
            return
        try:
            _, candidate = run_onnx(built, feeds)
        except Exception as exc:  # noqa: BLE001
            message = f"the optimized {spec.model} fails on inputs the source accepts: {exc}"
            raise BuildError(message, ctx.log.text()) from None
        parity = compare(reference, candidate, spec.settings.precision, names)
        ctx.log.info(f"parity vs source ({spec.settings.precision}): {parity.detail}")
        if not parity.ok:
            raise BuildError(
                f"the optimized {spec.model} drifts from its source beyond the {spec.settings.precision} tolerance "
                f"({parity.detail}); use a higher precision or exclude the sensitive nodes",
                ctx.log.text(),
            )


def _ort_level(level: int):
    import onnxruntime as ort

    # Never ORT_ENABLE_ALL offline: its layout transforms target the build machine's CPU features,
    # and the saved model would be wrong on a serving node with different ones.
    if level <= 0:
        return ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if level == 1:
        return ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
