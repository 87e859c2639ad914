"""TensorRT builder: settings -> flags/profiles/trtexec mapping, and the API call sequence.

TensorRT cannot be installed here, so the API sequence runs against ``RecordingTensorRT``, a stand-in
that exposes the names the builder uses (spelled as in the TensorRT 10 Python API) and records every
call. The mapping functions are pure and tested directly.
"""

from __future__ import annotations

import enum
import shlex
from types import SimpleNamespace

import pytest

from engines import builders
from engines.builders import spec_for
from engines.builders.base import BuildError
from engines.builders.tensorrt_builder import TensorRtBuilder
from engines.builders.tensorrt_options import tensorrt_options, timing_cache_name, trtexec_command, trtexec_line
from engines.runners.local import LocalRunner
from engines.spec import BuilderSettings, Calibration, InputProfile, SourceRef, Target, content_key
from engines.store import LocalStore
from platform_spec.digests import file_sha256
from tests.engines.conftest import mlp_profile, write_mlp

SHA = "d" * 64
TWO_INPUTS = (
    InputProfile("audio_signal", (1, 128, 16), (8, 128, 800), (8, 128, 1600)),
    InputProfile("length:0", (1,), (8,), (8,)),
)


def spec(sku="l4", source=None, **settings):
    settings.setdefault("profiles", TWO_INPUTS)
    source = source or SourceRef("/m.onnx", SHA, "onnx")
    return spec_for("asr_encoder", "tensorrt", source, Target.for_gpu(sku), BuilderSettings(**settings))


@pytest.mark.parametrize(
    ("settings", "flags", "network"),
    [
        (dict(precision="fp32"), (), ()),
        (dict(precision="fp16"), ("FP16",), ()),
        (dict(precision="bf16"), ("BF16",), ()),
        (dict(precision="int8", strongly_typed=True), (), ("STRONGLY_TYPED",)),
        (
            dict(precision="fp8", strongly_typed=True, version_compatible=True),
            ("VERSION_COMPATIBLE",),
            ("STRONGLY_TYPED",),
        ),
        (dict(precision="fp16", version_compatible=True), ("FP16", "VERSION_COMPATIBLE"), ()),
    ],
)
def test_precision_and_network_flags(settings, flags, network):
    options = tensorrt_options(spec(**settings).settings)
    assert options.builder_flags == flags and options.network_flags == network


def test_int8_and_fp8_keep_fp16_fallback_and_other_settings_map_through():
    data = SourceRef("/c.npz", SHA)
    int8 = tensorrt_options(spec(precision="int8", calibration=Calibration("calibrator", data)).settings)
    fp8 = tensorrt_options(spec(sku="h100", precision="fp8", calibration=Calibration("modelopt", data)).settings)
    assert int8.builder_flags == ("INT8", "FP16") and fp8.builder_flags == ("FP8", "FP16")
    options = tensorrt_options(
        spec(workspace_mib=2048, optimization_level=5, hardware_compatibility="same_compute_capability").settings
    )
    assert options.workspace_bytes == 2048 * 1024 * 1024 and options.optimization_level == 5
    assert options.hardware_compatibility_level == "SAME_COMPUTE_CAPABILITY"
    assert options.profiles == TWO_INPUTS
    ampere = tensorrt_options(spec(hardware_compatibility="ampere_plus").settings)
    assert ampere.hardware_compatibility_level == "AMPERE_PLUS"
    assert timing_cache_name(Target.for_gpu("h100")) == "h100-sm90-trt10.13.3.9.cache"


def test_trtexec_command_line():
    cmd = trtexec_command(spec(precision="fp16"), "model.onnx", "model.plan", "l4-sm89-trt10.13.3.9.cache")
    assert cmd == [
        "trtexec",
        "--onnx=model.onnx",
        "--saveEngine=model.plan",
        "--skipInference",
        "--fp16",
        "--minShapes=audio_signal:1x128x16,'length:0':1",
        "--optShapes=audio_signal:8x128x800,'length:0':8",
        "--maxShapes=audio_signal:8x128x1600,'length:0':8",
        "--memPoolSize=workspace:4096",
        "--builderOptimizationLevel=3",
        "--timingCacheFile=l4-sm89-trt10.13.3.9.cache",
    ]
    # The printed line is shell-quoted: pasted into a shell it passes exactly these arguments.
    assert shlex.split(trtexec_line(cmd)) == cmd

    calibrator = Calibration("calibrator", SourceRef("/c.npz", SHA))
    calibrated = spec(precision="int8", calibration=calibrator, timing_cache=False)
    cmd = trtexec_command(calibrated, "m.onnx", "m.plan", "ignored.cache", "calibration.cache")
    assert "--int8" in cmd and "--fp16" in cmd and "--calib=calibration.cache" in cmd
    assert not any(c.startswith("--timingCacheFile") for c in cmd)

    typed = spec(
        sku="h100", precision="fp8", strongly_typed=True, version_compatible=True, hardware_compatibility="ampere_plus"
    )
    cmd = trtexec_command(typed, "m.onnx", "m.plan")
    assert "--stronglyTyped" in cmd and "--fp8" not in cmd and "--fp16" not in cmd
    assert "--versionCompatible" in cmd and "--hardwareCompatibilityLevel=ampere+" in cmd
    same = spec(hardware_compatibility="same_compute_capability")
    assert "--hardwareCompatibilityLevel=sameComputeCapability" in trtexec_command(same, "m.onnx", "m.plan")


class RecordingTensorRT:
    """The TensorRT 10 Python API surface the builder touches; every call lands in ``calls``."""

    def __init__(self, version="10.13.3.9", parse_ok=True, build_ok=True):
        self.__version__ = version
        self.calls: list[tuple] = []
        self.saved_caches: list[bytes] = []
        rec = self
        self.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 5})
        self.BuilderFlag = enum.IntEnum(
            "BuilderFlag", {n: i for i, n in enumerate(["FP16", "BF16", "INT8", "FP8", "VERSION_COMPATIBLE"])}
        )
        self.HardwareCompatibilityLevel = enum.IntEnum(
            "HardwareCompatibilityLevel", {"NONE": 0, "AMPERE_PLUS": 1, "SAME_COMPUTE_CAPABILITY": 2}
        )
        self.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")

        class ILogger:
            Severity = enum.IntEnum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3})

            def __init__(self):
                pass

        self.ILogger = ILogger

        class Profile:
            def set_shape(self, name, lo, opt, hi):
                rec.calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))

        class Cache:
            def __init__(self, blob):
                self.blob = blob

            def serialize(self):
                return self.blob + b"+timings"

        class Config:
            def set_memory_pool_limit(self, pool, size):
                rec.calls.append(("set_memory_pool_limit", pool, size))

            def __setattr__(self, name, value):
                rec.calls.append(("config." + name, value))
                object.__setattr__(self, name, value)

            def set_flag(self, flag):
                rec.calls.append(("set_flag", flag.name))

            def add_optimization_profile(self, profile):
                rec.calls.append(("add_optimization_profile",))

            def create_timing_cache(self, blob):
                rec.calls.append(("create_timing_cache", bytes(blob)))
                self._cache = Cache(bytes(blob))
                return self._cache

            def set_timing_cache(self, cache, ignore_mismatch):
                rec.calls.append(("set_timing_cache", ignore_mismatch))

            def get_timing_cache(self):
                return self._cache

        class Network:
            pass

        class Builder:
            def __init__(self, logger):
                rec.logger = logger

            def create_network(self, flags):
                rec.calls.append(("create_network", flags))
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                rec.calls.append(("build_serialized_network",))
                rec.logger.log(ILogger.Severity.WARNING, "weights of layer /Add were not fused")
                return b"PLAN" * 8 if build_ok else None

        class OnnxParser:
            def __init__(self, network, logger):
                self.num_errors = 0 if parse_ok else 1

            def parse_from_file(self, path):
                rec.calls.append(("parse_from_file", path.rsplit("/", 1)[-1]))
                return parse_ok

            def get_error(self, i):
                return "In node 3 (Conv): unsupported auto_pad"

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, data):
                rec.calls.append(("deserialize_cuda_engine", len(data)))
                return SimpleNamespace(num_io_tensors=2)

        self.Builder, self.OnnxParser, self.Runtime = Builder, OnnxParser, Runtime


@pytest.fixture
def use_trt(monkeypatch):
    def install(trt, probe="8.9"):
        monkeypatch.setitem(builders._BUILDERS, "tensorrt", lambda: TensorRtBuilder(trt, lambda: probe))
        return trt

    return install


def onnx_spec(tmp_path, **settings):
    path = write_mlp(tmp_path / "encoder.onnx")
    settings.setdefault("profiles", mlp_profile())
    return spec(source=SourceRef(path.as_uri(), file_sha256(path), "onnx"), **settings)


def test_build_applies_settings_keeps_timing_cache_and_publishes(tmp_path, store_dir, use_trt):
    trt = use_trt(RecordingTensorRT())
    store = LocalStore(store_dir)
    s = onnx_spec(tmp_path, precision="fp16", workspace_mib=1024, optimization_level=4)
    meta = LocalRunner().run(s, store)

    assert trt.calls[:2] == [("create_network", 0), ("parse_from_file", "encoder.onnx")]
    assert ("set_memory_pool_limit", "WORKSPACE", 1024 << 20) in trt.calls
    assert ("config.builder_optimization_level", 4) in trt.calls
    assert ("set_flag", "FP16") in trt.calls
    assert ("config.hardware_compatibility_level", trt.HardwareCompatibilityLevel.NONE) in trt.calls
    assert ("set_shape", "x", (1, 16), (4, 16), (16, 16)) in trt.calls
    assert ("create_timing_cache", b"") in trt.calls and ("set_timing_cache", False) in trt.calls
    assert trt.calls.index(("set_flag", "FP16")) < trt.calls.index(("build_serialized_network",))

    assert meta.key == content_key(s) and meta.primary == "model.plan"
    assert sorted(f.path for f in meta.files) == ["build.log", "model.plan", "trtexec.sh"]
    assert meta.versions["tensorrt"] == "10.13.3.9"
    plan = store.artifact_path(meta.key) / "model.plan"
    assert plan.read_bytes() == b"PLAN" * 8
    assert "--fp16" in (store.artifact_path(meta.key) / "trtexec.sh").read_text()
    assert "weights of layer /Add were not fused" in (store.artifact_path(meta.key) / "build.log").read_text()

    # The timing cache lives in the store per (GPU, TensorRT) and feeds the next build.
    assert store.get_blob("l4-sm89-trt10.13.3.9.cache") == b"+timings"
    LocalRunner().run(onnx_spec(tmp_path, precision="fp32"), store)
    assert ("create_timing_cache", b"+timings") in trt.calls
    assert store.get_blob("l4-sm89-trt10.13.3.9.cache") == b"+timings+timings"


def test_strongly_typed_sets_the_network_flag_and_no_precision_flag(tmp_path, store_dir, use_trt):
    trt = use_trt(RecordingTensorRT())
    typed = onnx_spec(tmp_path, precision="fp16", strongly_typed=True, timing_cache=False)
    LocalRunner().run(typed, LocalStore(store_dir))
    assert trt.calls[0] == ("create_network", 1 << 5)
    assert not [c for c in trt.calls if c[0] == "set_flag"]
    assert not [c for c in trt.calls if c[0] == "create_timing_cache"]


@pytest.mark.parametrize(
    ("trt", "probe", "message"),
    [
        (RecordingTensorRT(version="10.14.1.48"), "8.9", "has TensorRT 10.14.1.48 but asr_encoder targets 10.13.3.9"),
        (RecordingTensorRT(), "9.0", r"compute capability 9.0 but asr_encoder targets l4 \(8.9\)"),
        (RecordingTensorRT(parse_ok=False), "8.9", r"parser rejected asr_encoder: In node 3 \(Conv\): unsupported"),
        (RecordingTensorRT(build_ok=False), "8.9", "TensorRT failed to build asr_encoder"),
    ],
)
def test_refusals_and_failures_publish_nothing(tmp_path, store_dir, use_trt, trt, probe, message):
    use_trt(trt, probe)
    with pytest.raises(BuildError, match=message):
        LocalRunner().run(onnx_spec(tmp_path), LocalStore(store_dir))
    assert LocalStore(store_dir).keys() == []


def test_without_tensorrt_the_error_says_where_builds_run(tmp_path, store_dir):
    with pytest.raises(BuildError, match="runs in the NVIDIA TensorRT image"):
        LocalRunner().run(onnx_spec(tmp_path), LocalStore(store_dir))
