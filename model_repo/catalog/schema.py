"""The catalog's schema: roles, tensors, batching, instance groups, precision, serving per target."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["llm", "asr", "tts", "vad", "anc", "embed", "retriever", "pipeline"]
RenderTarget = Literal["gpu", "cpu"]  # which repository a catalog entry is rendered for
Pool = Literal["llm", "speech"]
InstanceKind = Literal["KIND_GPU", "KIND_CPU"]

ROLES: tuple[str, ...] = ("llm", "asr", "tts", "vad", "anc", "embed", "retriever", "pipeline")
TARGETS: tuple[str, ...] = ("gpu", "cpu")
AUDIO_SAMPLE_RATE = 16_000

# Triton data types a catalog tensor may use (names of tritonclient's model_config_pb2.DataType).
TRITON_DTYPES: frozenset[str] = frozenset(
    {
        "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8",
        "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64",
        "TYPE_STRING", "TYPE_BF16",
    }
)  # fmt: skip

# Labels for what weights a target serves. The CLI, the README and the served model list show them.
WEIGHTS_PRODUCTION = "production"
WEIGHTS_PACKAGED = "packaged"
WEIGHTS_RANDOM = "random-weights (real architecture, not trained)"


class CatalogError(ValueError):
    """A selection, override or catalog entry that cannot be served; the message names value and fix."""


# --- building blocks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """Where a model's weights come from: a URI (schemes in the module docstring) and its sha256."""

    uri: str
    sha256: str | None = None

    @property
    def scheme(self) -> str:
        return self.uri.split("://", 1)[0]


@dataclass(frozen=True)
class Tensor:
    """One input or output. ``dims`` exclude the batch dimension when the model batches."""

    name: str
    dtype: str  # Triton name, e.g. "TYPE_FP32"
    dims: tuple[int, ...]
    optional: bool = False
    # Triton reshape: the shape the backend sees (e.g. [] for a per-item scalar of a batched engine).
    reshape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Batching:
    """Triton batching. ``max_batch_size == 0``: the model sees whole requests and Triton never batches
    (LLMs batch in flight inside TensorRT-LLM; the streaming pipeline holds a session per request)."""

    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0

    @property
    def dynamic(self) -> bool:
        return self.max_batch_size > 0


@dataclass(frozen=True)
class InstanceGroup:
    kind: InstanceKind
    count: int = 1
    gpus: tuple[int, ...] = ()  # KIND_GPU only; empty = Triton places `count` instances on every GPU


@dataclass(frozen=True)
class Precision:
    default: str
    allowed: tuple[str, ...]


@dataclass(frozen=True)
class Serving:
    """How one render target serves a model.

    Exactly one of ``backend`` / ``platform`` is set. ``python_model`` is the directory under
    ``model_repo/python_models/`` whose files become ``<repo>/<name>/1/`` (Python backend only).
    ``artifact`` is the file the model loads next to its code: built by ``model_repo.artifacts`` on the
    cpu target (and for ``generated://`` sources on the gpu target), placed by the publication otherwise
    (listed in the repository manifest). ``files`` (gpu target): further files the model loads from its
    version directory, file name -> source, placed the same way (module docstring: GPU files).
    ``batching`` overrides the model's public batching for this target (engines and tuning sweeps).
    """

    instance_group: InstanceGroup
    weights: str
    backend: str | None = None
    platform: str | None = None
    python_model: str | None = None
    artifact: Artifact | None = None
    default_model_filename: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    batching: Batching | None = None
    files: Mapping[str, Artifact] = field(default_factory=dict)


@dataclass(frozen=True)
class CatalogEngine:
    """A gpu-only internal Triton model: a TensorRT plan built from an ONNX graph, called through BLS by
    the public model's Python pre/post code. Its name is ``<public>_<suffix>``. The engine is built at
    the public model's selected precision (``engines/`` builds it; the renderer only configures it)."""

    name: str
    source: Artifact
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    batching: Batching
    # (min, opt, max) of each dynamic (-1) dimension of each input, in axis order, batch excluded: the TensorRT
    # optimization profile (``engines/`` builds it) and the warm-up shape (``opt``). A request outside it fails
    # at run time, so the public model's limits come from the same constants (``models.py``).
    profile: Mapping[str, tuple[tuple[int, int, int], ...]] = field(default_factory=dict)
    instance_group: InstanceGroup = InstanceGroup("KIND_GPU", 1)


@dataclass(frozen=True)
class LoraVariant:
    """This LLM is a LoRA fine-tune of ``base``. In ``llm_variants='lora'`` mode the gpu target serves it
    as an adapter on the base model (one set of weights in GPU memory) instead of a second model."""

    base: str
    adapter: Artifact


@dataclass(frozen=True)
class ModelSpec:
    """One public model. ``precision_selected`` is set by :func:`select` from the stack config."""

    name: str
    role: Role
    description: str
    source: Artifact  # the production weights the gpu target serves
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    batching: Batching
    precision: Precision
    # Estimated GPU memory per instance, MiB, per precision (weights + activations + KV/workspace).
    gpu_memory_mib: Mapping[str, int]
    pool: Pool
    # p99 latency objective: whole response for request/response models; first streamed response for
    # decoupled ones (time to first token / first audio chunk).
    latency_slo_p99_ms: int
    decoupled: bool
    serving: Mapping[str, Serving]  # target -> Serving
    engines: tuple[CatalogEngine, ...] = ()
    depends_on: tuple[str, ...] = ()  # models this one calls through BLS (must be served too)
    lora: LoraVariant | None = None
    enabled_by_default: bool = True
    precision_selected: str | None = None

    def target(self, target: str) -> Serving:
        if target not in self.serving:
            raise CatalogError(f"model {self.name!r}: unknown target {target!r}; use one of {sorted(self.serving)}")
        return self.serving[target]

    @property
    def precision_in_use(self) -> str:
        return self.precision_selected or self.precision.default

    @property
    def gpu_memory_estimate_mib(self) -> int:
        """GPU memory per instance at the precision in use (0 for models that never touch the GPU)."""
        return self.gpu_memory_mib.get(self.precision_in_use, 0)


class ModelSelectionLike(Protocol):
    """What :func:`select` needs from a stack setting (``platform_spec.settings.ModelSelection``)."""

    enabled: bool
    precision: str | None
