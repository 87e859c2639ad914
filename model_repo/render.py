"""Render a Triton model repository for one target from the catalog.

Every ``config.pbtxt`` is built as a ``tritonclient.grpc.model_config_pb2.ModelConfig`` message and
written with ``google.protobuf.text_format``: no string templates, so no placeholder can survive. The
repository is written into a temporary sibling directory, parsed back and validated
(:func:`validate_repository`), and only then renamed to ``out``; on any error nothing is left behind.

Layout written::

    <out>/repository.json            what was rendered: target, models, weights labels, artifacts
    <out>/<model>/config.pbtxt
    <out>/<model>/1/model.py ...     Python backend: files of model_repo/python_models/<python_model>/
    <out>/<model>/1/<artifact>       cpu target: built by model_repo.artifacts.build_cpu_artifact

On the ``gpu`` target the weights (TensorRT plans, the LLM checkpoints, packaged files, exported token
tables) are not written here: ``repository.json`` lists, per model version directory, the file each
model expects and the artifact it comes from, and the publication places them (infra/triton). Only
``generated://`` artifacts, reproducible here (the retriever's index), are built into the repository.
Every file a Python model declares in ``REQUIRED_FILES`` must be written or listed, or rendering fails.
A call to a model of another GPU pool gets ``<role>_endpoint_pool`` (:func:`endpoint_pools`).

Inputs: the selected catalog specs (``catalog.select`` + ``catalog.apply_overrides``), the target and
``llm_variants`` (``"separate"``: each LLM variant is its own model; ``"lora"``: gpu target serves LoRA
variants as adapters on their base model).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from model_repo.catalog import (
    AUDIO_SAMPLE_RATE,
    TARGETS,
    Artifact,
    Batching,
    CatalogEngine,
    CatalogError,
    InstanceGroup,
    ModelSpec,
    Tensor,
    effective_batching,
    serving_precision,
)
from model_repo.layout import (  # noqa: F401 (part of this module's interface)
    ALLOWED_BACKENDS,
    ALLOWED_PLATFORMS,
    COMMON_DIR,
    ENDPOINT_POOL_SUFFIX,
    LLM_VARIANT_MODES,
    MANIFEST,
    PLAN_FILENAME,
    PYTHON_MODELS_DIR,
    UNRESOLVED,
    VERSION,
    RenderError,
    required_files,
)
from model_repo.repository_checks import (  # noqa: F401 (part of this module's interface)
    parse_config,
    validate_configs,
    validate_repository,
)

ArtifactBuilder = Callable[[ModelSpec, Path], Path]


@dataclass(frozen=True)
class RenderedModel:
    name: str
    role: str
    weights: str
    precision: str
    config: mc.ModelConfig
    python_model: str | None = None
    spec: ModelSpec | None = None  # None for engines (internal models)
    artifacts: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class RenderResult:
    out: Path
    target: str
    models: tuple[RenderedModel, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]


# --- protobuf construction ------------------------------------------------------------------------


def _dtype(tensor: Tensor) -> int:
    return mc.DataType.Value(tensor.dtype)


def _input(tensor: Tensor, ragged: bool = False) -> mc.ModelInput:
    msg = mc.ModelInput(name=tensor.name, data_type=_dtype(tensor), dims=list(tensor.dims), optional=tensor.optional)
    msg.allow_ragged_batch = ragged
    if tensor.reshape is not None:
        msg.reshape.shape.extend(tensor.reshape)
        # An empty reshape must still be present in the message: mark the submessage as set.
        msg.reshape.SetInParent()
    return msg


def _output(tensor: Tensor) -> mc.ModelOutput:
    msg = mc.ModelOutput(name=tensor.name, data_type=_dtype(tensor), dims=list(tensor.dims))
    if tensor.reshape is not None:
        msg.reshape.shape.extend(tensor.reshape)
        msg.reshape.SetInParent()
    return msg


QUEUE_BATCHES = 16  # a dynamically batched model queues at most this many full batches


def _instance_group(group: InstanceGroup, name: str) -> mc.ModelInstanceGroup:
    kind = mc.ModelInstanceGroup.Kind.Value(group.kind)
    return mc.ModelInstanceGroup(name=name, kind=kind, count=group.count, gpus=list(group.gpus))


def _batching(config: mc.ModelConfig, batching: Batching) -> None:
    config.max_batch_size = batching.max_batch_size
    if batching.dynamic:
        config.dynamic_batching.preferred_batch_size.extend(batching.preferred_batch_sizes)
        config.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_us
        # A bounded queue: under overload a request is refused at once ("Exceeds maximum queue size") instead of
        # waiting behind an unbounded backlog; the autoscaler sees the queue time and adds replicas.
        config.dynamic_batching.default_queue_policy.max_queue_size = QUEUE_BATCHES * batching.max_batch_size


def _parameters(config: mc.ModelConfig, params: Mapping[str, str]) -> None:
    for key, value in sorted(params.items()):
        config.parameters[key].string_value = str(value)


def model_config(
    spec: ModelSpec,
    target: str,
    *,
    lora_adapters: Mapping[str, str] | None = None,
    endpoint_pools: Mapping[str, str] | None = None,
) -> mc.ModelConfig:
    """The ModelConfig of a public model on ``target``; ``endpoint_pools`` adds the parameters that
    route calls to another pool's server (:func:`endpoint_pools`)."""
    serving = spec.target(target)
    config = mc.ModelConfig(name=spec.name)
    if serving.backend:
        config.backend = serving.backend
    if serving.platform:
        config.platform = serving.platform
    if serving.default_model_filename:
        config.default_model_filename = serving.default_model_filename
    batching = effective_batching(spec, target)
    _batching(config, batching)
    inputs = list(spec.inputs)
    if lora_adapters:
        inputs.append(Tensor("LORA_NAME", "TYPE_STRING", (1,), optional=True))
    # Triton's batcher groups only requests whose inputs have the same shape unless an input allows ragged
    # batches; utterances never share a length, so without it an ASR/ANC/VAD batch is one request. A Python model
    # gets each request's own tensors (nothing is concatenated for it) and its code pads what it batches.
    ragged = batching.dynamic and serving.backend == "python"
    config.input.extend(_input(t, ragged=ragged and -1 in t.dims) for t in inputs)
    config.output.extend(_output(t) for t in spec.outputs)
    config.instance_group.append(_instance_group(serving.instance_group, f"{spec.name}_{target}"))
    if spec.decoupled:
        config.model_transaction_policy.decoupled = True
    params = dict(serving.parameters)
    params["role"] = spec.role
    params["weights"] = serving.weights
    if target == "gpu":
        params["precision"] = spec.precision_in_use
    if any(t.name == "SAMPLE_RATE" for t in spec.inputs):
        params["sample_rate"] = str(AUDIO_SAMPLE_RATE)
    if lora_adapters:
        params["lora_adapters"] = json.dumps(dict(lora_adapters), sort_keys=True)
    params.update(endpoint_pools or {})
    _parameters(config, params)
    return config


def endpoint_pools(spec: ModelSpec, target: str, by_name: Mapping[str, ModelSpec]) -> dict[str, str]:
    """``<role>_endpoint_pool = <pool>`` for every ``<role>_model`` that ``spec`` calls on another pool.

    On the gpu target each GPU pool runs its own Triton server, and BLS reaches only the models of its
    own server; a call to a model of another pool (the voice pipeline -> the LLM) goes over gRPC to the
    server of the GPU pool named here, which the caller finds in ``TRITON_GRPC_ENDPOINTS``. The cpu
    target serves everything from one server: no parameter, every call stays BLS.
    """
    if target != "gpu":
        return {}
    found = {}
    for key, callee in spec.target(target).parameters.items():
        called = by_name.get(callee) if key.endswith("_model") else None
        if called is not None and called.pool != spec.pool:
            found[key[: -len("_model")] + ENDPOINT_POOL_SUFFIX] = called.pool
    return found


def engine_config(engine: CatalogEngine, parent: ModelSpec) -> mc.ModelConfig:
    """The ModelConfig of a gpu-target TensorRT engine a public model calls through BLS."""
    config = mc.ModelConfig(name=engine.name, platform="tensorrt_plan", default_model_filename=PLAN_FILENAME)
    _batching(config, engine.batching)
    config.input.extend(_input(t) for t in engine.inputs)
    config.output.extend(_output(t) for t in engine.outputs)
    config.instance_group.append(_instance_group(engine.instance_group, f"{engine.name}_gpu"))
    config.model_warmup.append(_warmup(engine))
    _parameters(config, {"role": parent.role, "engine_of": parent.name, "precision": parent.precision_in_use})
    return config


def _warmup(engine: CatalogEngine) -> mc.ModelWarmup:
    """One request at the profile's optimal shapes, run while the model loads: the first real request no longer
    pays TensorRT's execution-context and kernel set-up, and the pod turns ready only once the engine has run."""
    batching = engine.batching
    preferred = [b for b in batching.preferred_batch_sizes if b <= batching.max_batch_size]
    warmup = mc.ModelWarmup(name=f"{engine.name}_profile_opt", batch_size=max(preferred, default=1))
    for tensor in engine.inputs:
        optimal = iter(r[1] for r in engine.profile.get(tensor.name, ()))
        dims = [next(optimal) if d == -1 else d for d in tensor.dims]
        data = warmup.inputs[tensor.name]
        data.data_type = _dtype(tensor)
        data.dims.extend(dims)
        if tensor.dtype.startswith("TYPE_FP"):
            data.random_data = True
        else:
            data.zero_data = True
    return warmup


# --- planning (in memory, before anything touches the disk) ---------------------------------------


def rendered_models(specs: Sequence[ModelSpec], target: str, *, llm_variants: str = "separate") -> list[RenderedModel]:
    """Every model the repository will hold, with its config; raises RenderError on any problem."""
    if target not in TARGETS:
        raise RenderError(f"target {target!r} is not one of {list(TARGETS)}")
    if llm_variants not in LLM_VARIANT_MODES:
        raise RenderError(f"llm_variants {llm_variants!r} is not one of {list(LLM_VARIANT_MODES)}")
    if not specs:
        raise RenderError("no models selected; enable at least one model in the stack config")
    by_name = {s.name: s for s in specs}
    if len(by_name) != len(specs):
        raise RenderError(f"duplicate model names in selection: {[s.name for s in specs]}")
    for spec in specs:
        for dep in spec.depends_on:
            if dep not in by_name:
                raise RenderError(f"model {spec.name!r} calls {dep!r}, which is not selected; enable {dep!r}")

    # LoRA mode: on the gpu target, a LoRA variant rides on its base model as an adapter.
    adapters: dict[str, dict[str, str]] = {}
    folded: set[str] = set()
    if llm_variants == "lora" and target == "gpu":
        for spec in specs:
            if spec.lora is None:
                continue
            base = by_name.get(spec.lora.base)
            if base is None:
                raise RenderError(
                    f"llm_variants 'lora': {spec.name!r} is an adapter on {spec.lora.base!r}, which is not "
                    f"selected; enable {spec.lora.base!r} or use llm_variants 'separate'"
                )
            if base.precision_in_use != spec.precision_in_use:
                raise RenderError(
                    f"llm_variants 'lora': {spec.name!r} precision {spec.precision_in_use!r} differs from its base "
                    f"{base.name!r} ({base.precision_in_use!r}); an adapter runs on the base's weights, set both alike"
                )
            adapters.setdefault(base.name, {})[spec.name] = spec.lora.adapter.uri
            folded.add(spec.name)
        referenced = {dep for s in specs for dep in s.depends_on} & folded
        if referenced:
            raise RenderError(f"llm_variants 'lora': {sorted(referenced)} are called by name; use 'separate'")

    rendered: list[RenderedModel] = []
    for spec in specs:
        if spec.name in folded:
            continue
        serving = spec.target(target)
        try:
            config = model_config(
                spec,
                target,
                lora_adapters=adapters.get(spec.name),
                endpoint_pools=endpoint_pools(spec, target, by_name),
            )
        except (ValueError, CatalogError) as exc:
            raise RenderError(f"model {spec.name!r}: {exc}") from None
        artifacts: list[dict[str, Any]] = []
        if target == "gpu":
            artifacts = _gpu_artifacts(spec, adapters.get(spec.name))
        rendered.append(
            RenderedModel(
                name=spec.name,
                role=spec.role,
                weights=serving.weights,
                precision=serving_precision(spec, target),
                config=config,
                python_model=serving.python_model if serving.backend == "python" else None,
                spec=spec,
                artifacts=tuple(artifacts),
            )
        )
        if target == "gpu":
            for engine in spec.engines:
                rendered.append(
                    RenderedModel(
                        name=engine.name,
                        role=spec.role,
                        weights=serving.weights,
                        precision=spec.precision_in_use,
                        config=engine_config(engine, spec),
                        artifacts=(
                            {
                                "path": f"{VERSION}/{PLAN_FILENAME}",
                                "kind": "tensorrt-engine",
                                "source": engine.source.uri,
                                "precision": spec.precision_in_use,
                            },
                        ),
                    )
                )
    validate_configs({m.name: m.config for m in rendered}, target)
    return rendered


def _gpu_artifacts(spec: ModelSpec, adapters: Mapping[str, str] | None) -> list[dict[str, Any]]:
    """What the deployment must place in the version directory of a gpu-target public model."""
    serving = spec.target("gpu")
    found: list[dict[str, Any]] = []
    if spec.role == "llm":
        found.append(
            {
                "path": f"{VERSION}/{serving.parameters.get('checkpoint_dir', 'checkpoint')}",
                "kind": "llm-checkpoint",
                "source": spec.source.uri,
                "precision": spec.precision_in_use,
            }
        )
        for name, uri in sorted((adapters or {}).items()):
            found.append({"path": f"{VERSION}/lora/{name}", "kind": "lora-adapter", "source": uri})
    elif serving.artifact is not None and not builds_on_gpu(serving):
        found.append(_placed_file(serving.artifact.uri.rstrip("/").rsplit("/", 1)[-1], serving.artifact))
    # Built artifacts are listed by render_repository once built (their files and digests are known then).
    found.extend(_placed_file(name, artifact) for name, artifact in sorted(serving.files.items()))
    return found


def _placed_file(name: str, artifact: Artifact) -> dict[str, Any]:
    """A file the publication places next to the model's code (how: catalog module docstring, GPU files)."""
    return {"path": f"{VERSION}/{name}", "kind": "file", "source": artifact.uri, "sha256": artifact.sha256}


def builds_on_gpu(serving: Any) -> bool:
    """True when the renderer builds the gpu-target artifact itself (``generated://``: reproducible here)."""
    return serving.artifact is not None and serving.artifact.scheme == "generated"


# --- writing --------------------------------------------------------------------------------------


def _default_artifact_builder(target: str) -> ArtifactBuilder:
    try:
        module = importlib.import_module("model_repo.artifacts")
    except ImportError as exc:
        raise RenderError(
            f"the {target} target builds model artifacts with model_repo.artifacts, which cannot be imported ({exc})"
        ) from None
    builder = getattr(module, f"build_{target}_artifact", None)
    if builder is None:
        raise RenderError(f"model_repo.artifacts has no build_{target}_artifact(spec, dest_dir) -> Path")
    return builder


def _builds_here(model: RenderedModel, target: str) -> bool:
    """Whether the renderer builds this model's artifact: every one on cpu, ``generated://`` ones on gpu."""
    if model.spec is None or model.spec.target(target).artifact is None:
        return False
    return target == "cpu" or builds_on_gpu(model.spec.target(target))


def _files_under(directory: Path) -> set[Path]:
    return {p for p in directory.rglob("*") if p.is_file()}


def _copy_python_model(model: RenderedModel, python_models_dir: Path, version_dir: Path) -> None:
    source = python_models_dir / str(model.python_model)
    if not (source / "model.py").is_file():
        raise RenderError(
            f"model {model.name!r}: Python-backend code missing: {source / 'model.py'} does not exist "
            f"(python_model {model.python_model!r} in the catalog)"
        )
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "tests")
    shutil.copytree(source, version_dir, ignore=ignore, dirs_exist_ok=True)
    common = python_models_dir / COMMON_DIR
    if common.is_dir():
        shutil.copytree(common, version_dir / COMMON_DIR, ignore=ignore, dirs_exist_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode())
        with f.open("rb") as handle:
            for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def render_repository(
    specs: Sequence[ModelSpec],
    target: str,
    out: Path | str,
    *,
    llm_variants: str = "separate",
    python_models_dir: Path | None = None,
    artifact_builder: ArtifactBuilder | None = None,
    replace: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RenderResult:
    """Write the repository for ``target`` to ``out`` atomically and return what was rendered.

    ``out`` must not exist (or be empty) unless ``replace`` is true, in which case the old repository
    is swapped out only after the new one validated. ``python_models_dir`` defaults to
    ``model_repo/python_models``; ``artifact_builder`` to ``model_repo.artifacts.build_cpu_artifact``
    (cpu target only).
    """
    out = Path(out).resolve()
    python_models_dir = Path(python_models_dir or PYTHON_MODELS_DIR)
    models = rendered_models(specs, target, llm_variants=llm_variants)
    if out.exists() and not out.is_dir():
        raise RenderError(f"--out {out} exists and is not a directory; choose another path")
    if out.exists() and any(out.iterdir()) and not replace:
        raise RenderError(f"--out {out} is not empty; pass replace=True (--replace) or choose an empty path")
    needs_artifacts = any(_builds_here(m, target) for m in models)
    builder = artifact_builder or (_default_artifact_builder(target) if needs_artifacts else None)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.rendering-", dir=out.parent))
    try:
        manifest_models = []
        written_models = []  # the models with every artifact, built ones included (what repository.json lists)
        for model in models:
            model_dir = staging / model.name
            version_dir = model_dir / VERSION
            version_dir.mkdir(parents=True)
            (model_dir / "config.pbtxt").write_text(text_format.MessageToString(model.config))
            if model.python_model:
                _copy_python_model(model, python_models_dir, version_dir)
            artifacts = [dict(a) for a in model.artifacts]
            if _builds_here(model, target):
                uri = model.spec.target(target).artifact.uri
                if progress:
                    progress(f"building {model.name} artifact {uri}")
                assert builder is not None
                code = _files_under(version_dir)
                try:
                    built = Path(builder(model.spec, version_dir))
                except Exception as exc:  # the builder's own error names the artifact; add the model
                    raise RenderError(f"model {model.name!r}: building its {target} artifact failed: {exc}") from exc
                if not built.exists() or version_dir.resolve() not in (built.resolve(), *built.resolve().parents):
                    raise RenderError(
                        f"model {model.name!r}: artifact builder returned {built}, which is not inside {version_dir}"
                    )
                # cpu: the main file. gpu: every file the build wrote, each with its digest, which the
                # publication checks before uploading (the repository version is the only copy there).
                written = [built] if target == "cpu" else sorted(_files_under(version_dir) - code)
                artifacts.extend(
                    {
                        "path": str(path.resolve().relative_to(model_dir.resolve())),
                        "kind": "built",
                        "source": uri,
                        "sha256": _sha256(path),
                    }
                    for path in written
                )
            manifest_models.append(
                {
                    "name": model.name,
                    "role": model.role,
                    "public": model.spec is not None,
                    "weights": model.weights,
                    "precision": model.precision,
                    "backend": model.config.backend or model.config.platform,
                    "decoupled": model.config.model_transaction_policy.decoupled,
                    "artifacts": artifacts,
                }
            )
            written_models.append(dataclasses.replace(model, artifacts=tuple(artifacts)))
        manifest = {"target": target, "llm_variants": llm_variants, "models": manifest_models}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        validate_repository(staging, target)
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RenderResult(out=out, target=target, models=tuple(written_models))


def _swap_into_place(staging: Path, out: Path) -> None:
    """Rename the validated staging directory to ``out``; an old ``out`` is removed only afterwards."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
    try:
        os.rename(staging, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
