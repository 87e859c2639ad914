"""Artifacts that are a file shipped inside a PyPI package, served as is: Silero VAD's ONNX graph
(``silero-vad``) and the RNNoise library (``pyrnnoise``).

The file is copied into the model version so a rendered repository is self-contained (the serving
image needs the model directory, not the wheel), and its sha256 must equal the catalog's pin.
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from model_repo.artifacts.sources import package_file, package_version
from model_repo.artifacts.store import ArtifactError, Recipe

# The distribution that ships each package's files (recorded in the manifest for provenance).
DISTRIBUTIONS = {"silero_vad": "silero-vad", "pyrnnoise": "pyrnnoise"}


def recipe(spec, serving, ctx) -> Recipe:
    artifact = serving.artifact
    if artifact.sha256 is None:
        raise ArtifactError(f"model {spec.name!r}: {artifact.uri} is a packaged file; the catalog must pin its sha256")
    source = package_file(spec.name, artifact.uri, artifact.sha256)
    name = Path(urlsplit(artifact.uri).path).name
    module = urlsplit(artifact.uri).netloc
    distribution = DISTRIBUTIONS.get(module, module)

    def build(out: Path) -> None:
        shutil.copyfile(source, out / name)

    return Recipe(
        model=spec.name,
        role=spec.role,
        uri=artifact.uri,
        weights=serving.weights,
        main_file=name,
        builder_source=inspect.getsource(build),
        inputs={"sha256": artifact.sha256},
        build=build,
        details={"package": f"{distribution}=={package_version(distribution)}"},
    )
