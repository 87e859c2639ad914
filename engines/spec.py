"""What an engine is: its source, its builder settings and its target, and the content key over them.

An engine (a TensorRT plan, an optimized ONNX model, a quantized LLM checkpoint, a LoRA adapter) is
valid for exactly one source artifact, one set of builder settings, one runtime version and one GPU
compute capability. ``EngineSpec`` holds all of it as plain, frozen data; ``content_key`` hashes it
into the key under which the artifact is stored, so the same inputs always find the same artifact
and any changed input finds (or builds) a different one.

The spec travels as the flat property bag of the ``Engine`` resource (``to_inputs``/``from_inputs``):
one top-level property per field, so a diff can name the exact input that forces a rebuild.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from engines.spec_fields import (  # noqa: F401 (re-exported: engines.spec is the public name)
    _NAME,
    _SHA256,
    BUILDERS,
    CALIBRATION_ALGORITHMS,
    CALIBRATION_METHODS,
    HARDWARE_COMPATIBILITY,
    KEY_SCHEMA,
    KV_CACHE_DTYPES,
    PRECISIONS,
    PRECISIONS_OF_BUILDER,
    RUNTIME_OF_BUILDER,
    SOURCE_FORMAT_OF_BUILDER,
    SOURCE_FORMATS,
    BuilderSettings,
    Calibration,
    InputProfile,
    LlmSettings,
    SourceRef,
    SpecError,
    Target,
    calibration_to_dict,
    llm_to_dict,
    normalize,
)
from platform_spec import gpus


@dataclass(frozen=True)
class EngineSpec:
    model: str
    builder: str
    source: SourceRef
    target: Target
    builder_code_version: str
    settings: BuilderSettings = field(default_factory=BuilderSettings)

    def with_precision(self, precision: str) -> EngineSpec:
        return replace(self, settings=replace(self.settings, precision=precision))

    # --- the flat property bag of the Engine resource --------------------------------------------

    def to_inputs(self) -> dict[str, Any]:
        s, t = self.settings, self.target
        return {
            "model": self.model,
            "builder": self.builder,
            "source_uri": self.source.uri,
            "source_sha256": self.source.sha256,
            "source_format": self.source.format,
            "precision": s.precision,
            "profiles": [
                {"name": p.name, "min": list(p.min), "opt": list(p.opt), "max": list(p.max)} for p in s.profiles
            ],
            "workspace_mib": s.workspace_mib,
            "optimization_level": s.optimization_level,
            "timing_cache": s.timing_cache,
            "strongly_typed": s.strongly_typed,
            "version_compatible": s.version_compatible,
            "hardware_compatibility": s.hardware_compatibility,
            "calibration": calibration_to_dict(s.calibration),
            "llm": llm_to_dict(s.llm),
            "runtime": t.runtime,
            "runtime_version": t.runtime_version,
            "gpu_sku": t.gpu_sku,
            "compute_capability": t.compute_capability,
            "cuda_version": t.cuda_version,
            "serving_image": t.serving_image,
            "builder_code_version": self.builder_code_version,
        }

    @classmethod
    def from_inputs(cls, props: Mapping[str, Any]) -> EngineSpec:
        """Parse and validate the resource inputs; raise SpecError listing every problem at once."""
        problems: list[tuple[str, str]] = []
        p = _Reader(props, problems)
        spec = cls(
            model=p.string("model"),
            builder=p.choice("builder", BUILDERS),
            source=SourceRef(
                p.string("source_uri"), p.sha256("source_sha256"), p.choice("source_format", SOURCE_FORMATS)
            ),
            target=Target(
                runtime=p.choice("runtime", ("tensorrt", "onnxruntime", "tensorrt_llm")),
                runtime_version=p.string("runtime_version"),
                gpu_sku=p.optional_string("gpu_sku"),
                compute_capability=p.optional_string("compute_capability"),
                serving_image=p.optional_string("serving_image") or "",
                cuda_version=p.optional_string("cuda_version"),
            ),
            builder_code_version=p.string("builder_code_version"),
            settings=BuilderSettings(
                precision=p.choice("precision", PRECISIONS),
                profiles=p.profiles("profiles"),
                workspace_mib=p.integer("workspace_mib", 4096, 1, 1 << 20),
                optimization_level=p.integer("optimization_level", 3, 0, 5),
                timing_cache=p.boolean("timing_cache", True),
                strongly_typed=p.boolean("strongly_typed", False),
                version_compatible=p.boolean("version_compatible", False),
                hardware_compatibility=p.choice("hardware_compatibility", HARDWARE_COMPATIBILITY, "none"),
                calibration=p.calibration("calibration"),
                llm=p.llm("llm"),
            ),
        )
        if not problems:
            problems.extend(semantic_problems(spec))
        if problems:
            raise SpecError(problems)
        return spec


def semantic_problems(spec: EngineSpec) -> list[tuple[str, str]]:
    """Rules across fields: builder vs source/runtime/precision, GPU facts, calibration needs."""
    out: list[tuple[str, str]] = []
    s, t = spec.settings, spec.target
    want_format = SOURCE_FORMAT_OF_BUILDER[spec.builder]
    if spec.source.format != want_format:
        reason = f"{spec.source.format!r} cannot feed the {spec.builder} builder; it reads {want_format!r}"
        out.append(("source_format", reason))
    want_runtime = RUNTIME_OF_BUILDER[spec.builder]
    if t.runtime != want_runtime:
        out.append(("runtime", f"{t.runtime!r} does not load {spec.builder} artifacts; use {want_runtime!r}"))
    if s.precision not in PRECISIONS_OF_BUILDER[spec.builder]:
        out.append(
            (
                "precision",
                f"{s.precision!r} is not supported by the {spec.builder} builder; "
                f"use one of {list(PRECISIONS_OF_BUILDER[spec.builder])}",
            )
        )
    if t.runtime == "onnxruntime":
        if t.gpu_sku is not None or t.compute_capability is not None:
            out.append(("gpu_sku", f"{t.gpu_sku!r}: the onnxruntime builder targets the CPU; leave gpu_sku unset"))
    else:
        sku = gpus.GPU_SKUS.get(t.gpu_sku or "")
        if sku is None:
            out.append(("gpu_sku", f"{t.gpu_sku!r} is not a known GPU SKU; use one of {sorted(gpus.GPU_SKUS)}"))
        else:
            if t.compute_capability != sku.compute_capability:
                out.append(
                    (
                        "compute_capability",
                        f"{t.compute_capability!r} does not match {sku.name} "
                        f"({sku.compute_capability}, platform_spec/gpus.py); "
                        "build the target with Target.for_gpu",
                    )
                )
            if s.precision == "fp8" and not sku.fp8:
                out.append(("precision", f"'fp8' needs FP8 tensor cores (Ada/Hopper); {sku.name} has none, use fp16"))
            if s.precision == "bf16" and _cc(sku.compute_capability) < (8, 0):
                reason = f"'bf16' needs compute capability >= 8.0; {sku.name} is {sku.compute_capability}"
                out.append(("precision", reason))
            if s.hardware_compatibility == "ampere_plus" and _cc(sku.compute_capability) < (8, 0):
                out.append(
                    (
                        "hardware_compatibility",
                        f"'ampere_plus' engines must be built on Ampere or newer; "
                        f"{sku.name} is {sku.compute_capability}",
                    )
                )
    if spec.builder == "tensorrt":
        out.extend(_tensorrt_problems(s))
    elif spec.builder == "onnxruntime" and s.calibration is not None:
        if s.calibration.method != "calibrator" or s.calibration.data is None:
            reason = "the onnxruntime builder calibrates int8 from a data set only; use method 'calibrator' with data"
            out.append(("calibration", reason))
        if s.precision != "int8":
            out.append(("calibration", f"precision {s.precision!r} needs no calibration; remove it or use int8"))
    elif spec.builder == "tensorrt_llm":
        cal = s.calibration
        if s.precision == "fp8" and (cal is None or cal.method != "modelopt" or cal.data is None):
            reason = (
                "an fp8 LLM checkpoint is calibrated by ModelOpt: add calibration {method: modelopt, data_uri: "
                "<text file, one sample per line>, data_sha256}"
            )
            out.append(("calibration", reason))
        if cal is not None and s.precision != "fp8":
            out.append(("calibration", f"precision {s.precision!r} needs no calibration; remove it or use fp8"))
    elif spec.builder == "lora" and s.calibration is not None:
        out.append(("calibration", "a LoRA adapter takes no calibration block; remove it"))
    if spec.builder in ("tensorrt_llm", "lora") and s.llm is None:
        out.append(("llm", f"the {spec.builder} builder needs an llm settings block"))
    if spec.builder == "lora" and s.llm is not None and not s.llm.base_model_key:
        out.append(("llm", "a LoRA adapter needs llm.base_model_key: the content key of its base checkpoint"))
    return out


def _tensorrt_problems(s: BuilderSettings) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    cal = s.calibration
    if cal is not None and s.precision not in ("int8", "fp8"):
        out.append(("calibration", f"precision {s.precision!r} needs no calibration; remove it or use int8/fp8"))
    if cal is not None and cal.method == "calibrator" and s.precision != "int8":
        out.append(("calibration", "TensorRT's implicit calibrator only makes int8; use method 'modelopt' for fp8"))
    if cal is not None and cal.method == "calibrator" and s.strongly_typed:
        out.append(
            (
                "strongly_typed",
                "a strongly typed network takes its precisions from the ONNX, so the implicit int8 calibrator "
                "cannot run; use calibration method 'modelopt' (explicit Q/DQ) or strongly_typed: false",
            )
        )
    if s.precision in ("int8", "fp8") and cal is None and not s.strongly_typed:
        out.append(
            (
                "calibration",
                f"precision {s.precision!r} needs scales: add calibration "
                "(method 'modelopt', or 'calibrator' for int8), "
                "or set strongly_typed for an ONNX that already carries Q/DQ nodes",
            )
        )
    if cal is not None and cal.data is None:
        # ModelOpt would fall back to random data, whose scales are meaningless for real traffic.
        out.append(("calibration", f"method {cal.method!r} needs data (an .npz of input batches with its sha256)"))
    return out


# --- helpers ------------------------------------------------------------------------------------------


def _cc(value: str) -> tuple[int, int]:
    major, minor = value.split(".")
    return int(major), int(minor)


class _Reader:
    """Reads one property bag, collecting (property, reason) problems instead of stopping at the first."""

    def __init__(self, props: Mapping[str, Any], problems: list[tuple[str, str]]):
        self.props = props
        self.problems = problems

    def _bad(self, name: str, value: Any, reason: str) -> None:
        self.problems.append((name, f"{value!r} {reason}"))

    def string(self, name: str) -> str:
        value = self.props.get(name)
        if not isinstance(value, str) or not value.strip():
            self._bad(name, value, "must be a non-empty string")
            return ""
        return value

    def optional_string(self, name: str) -> str | None:
        value = self.props.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self._bad(name, value, "must be a string or unset")
            return None
        return value

    def sha256(self, name: str) -> str:
        value = self.props.get(name)
        if not isinstance(value, str) or not _SHA256.match(value):
            self._bad(name, value, "must be 64 lowercase hex characters (the output of sha256sum)")
            return "0" * 64
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
        value = self.props.get(name, default)
        if value not in allowed:
            self._bad(name, value, f"is not allowed; use one of {list(allowed)}")
            return allowed[0]
        return value

    def integer(
        self, name: str, default: int, low: int, high: int, props: Mapping[str, Any] | None = None, prefix: str = ""
    ) -> int:
        value = normalize((props if props is not None else self.props).get(name, default))
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self._bad(prefix + name, value, f"must be an integer in [{low}, {high}]")
            return default
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.props.get(name, default)
        if not isinstance(value, bool):
            self._bad(name, value, "must be true or false")
            return default
        return value

    def profiles(self, name: str) -> tuple[InputProfile, ...]:
        raw = self.props.get(name) or []
        if not isinstance(raw, (list, tuple)):
            self._bad(name, raw, "must be a list of {name, min, opt, max}")
            return ()
        out, seen = [], set()
        for i, item in enumerate(raw):
            where = f"{name}[{i}]"
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item.get("name"):
                self._bad(where, item, "must be {name, min, opt, max} with a non-empty input name")
                continue
            dims = {}
            for which in ("min", "opt", "max"):
                shape = normalize(item.get(which))
                if (
                    not isinstance(shape, list)
                    or not shape
                    or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
                ):
                    self._bad(f"{where}.{which}", item.get(which), "must be a non-empty list of positive integers")
                    dims = {}
                    break
                dims[which] = tuple(shape)
            if not dims:
                continue
            if not len(dims["min"]) == len(dims["opt"]) == len(dims["max"]):
                self._bad(where, item, "min, opt and max must have the same rank")
                continue
            if not all(a <= b <= c for a, b, c in zip(dims["min"], dims["opt"], dims["max"], strict=True)):
                self._bad(where, item, "needs min <= opt <= max in every dimension")
                continue
            if item["name"] in seen:
                self._bad(where, item["name"], "repeats an input name; give each input one profile entry")
                continue
            seen.add(item["name"])
            out.append(InputProfile(item["name"], dims["min"], dims["opt"], dims["max"]))
        return tuple(out)

    def calibration(self, name: str) -> Calibration | None:
        raw = self.props.get(name)
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            self._bad(name, raw, "must be {method, data_uri, data_sha256, algorithm, batches} or unset")
            return None
        method = raw.get("method")
        if method not in CALIBRATION_METHODS:
            self._bad(f"{name}.method", method, f"is not allowed; use one of {list(CALIBRATION_METHODS)}")
            return None
        algorithm = raw.get("algorithm", "entropy")
        if algorithm not in CALIBRATION_ALGORITHMS:
            self._bad(f"{name}.algorithm", algorithm, f"is not allowed; use one of {list(CALIBRATION_ALGORITHMS)}")
        data = None
        if raw.get("data_uri") or raw.get("data_sha256"):
            digest = raw.get("data_sha256")
            if not isinstance(digest, str) or not _SHA256.match(digest):
                self._bad(f"{name}.data_sha256", digest, "must be the sha256 of the calibration .npz")
            if not isinstance(raw.get("data_uri"), str) or not raw.get("data_uri"):
                self._bad(f"{name}.data_uri", raw.get("data_uri"), "must say where the calibration .npz lives")
            data = SourceRef(str(raw.get("data_uri")), str(digest), "calibration")
        batches = self.integer("batches", 32, 1, 100_000, raw, f"{name}.")
        return Calibration(method, data, algorithm if algorithm in CALIBRATION_ALGORITHMS else "entropy", batches)

    def llm(self, name: str) -> LlmSettings | None:
        raw = self.props.get(name)
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            self._bad(name, raw, "must be an object of LLM serving settings or unset")
            return None
        d = LlmSettings()
        kv = raw.get("kv_cache_dtype", d.kv_cache_dtype)
        if kv not in KV_CACHE_DTYPES:
            self._bad(f"{name}.kv_cache_dtype", kv, f"is not allowed; use one of {list(KV_CACHE_DTYPES)}")
            kv = d.kv_cache_dtype
        fraction = raw.get("kv_cache_free_gpu_memory_fraction", d.kv_cache_free_gpu_memory_fraction)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.05 <= fraction <= 0.98:
            self._bad(f"{name}.kv_cache_free_gpu_memory_fraction", fraction, "must be a number in [0.05, 0.98]")
            fraction = d.kv_cache_free_gpu_memory_fraction
        modules = raw.get("lora_target_modules") or []
        if not isinstance(modules, (list, tuple)) or not all(isinstance(m, str) and _NAME.match(m) for m in modules):
            self._bad(f"{name}.lora_target_modules", modules, "must be a list of module names like 'attn_q'")
            modules = []
        base = raw.get("base_model_key")
        if base is not None and (not isinstance(base, str) or not _SHA256.match(base)):
            self._bad(f"{name}.base_model_key", base, "must be the 64-hex content key of the base checkpoint")
            base = None
        enable_lora = raw.get("enable_lora", False)
        if not isinstance(enable_lora, bool):
            self._bad(f"{name}.enable_lora", enable_lora, "must be true or false")
            enable_lora = False
        return LlmSettings(
            max_batch_size=self.integer("max_batch_size", d.max_batch_size, 1, 4096, raw, f"{name}."),
            max_num_tokens=self.integer("max_num_tokens", d.max_num_tokens, 1, 1 << 20, raw, f"{name}."),
            max_seq_len=self.integer("max_seq_len", d.max_seq_len, 1, 1 << 20, raw, f"{name}."),
            tensor_parallel_size=self.integer("tensor_parallel_size", d.tensor_parallel_size, 1, 64, raw, f"{name}."),
            kv_cache_dtype=kv,
            kv_cache_free_gpu_memory_fraction=float(fraction),
            calibration_samples=self.integer("calibration_samples", d.calibration_samples, 1, 1 << 16, raw, f"{name}."),
            enable_lora=enable_lora,
            max_lora_rank=self.integer("max_lora_rank", d.max_lora_rank, 1, 1024, raw, f"{name}."),
            max_loras=self.integer("max_loras", d.max_loras, 1, 1024, raw, f"{name}."),
            lora_target_modules=tuple(modules),
            base_model_key=base,
        )


# Last: engines.content_key imports only engines.spec_fields, and EngineSpec for type checking.
from engines.content_key import (  # noqa: E402, F401 (re-exported)
    KEYED_INPUTS,
    UNKEYED_SPEC_INPUTS,
    FieldChange,
    content_key,
    key_material,
    spec_differences,
)
