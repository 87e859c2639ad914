"""Find the file a model loads in its version directory, verified when it came with ``artifact.json``.

cpu target: ``model_repo.artifacts`` writes the files plus ``artifact.json`` (every file's sha256); a
model refuses to start on a corrupted or partial copy instead of serving wrong results.
gpu target: the publication places the files listed in ``repository.json`` (checking their digests);
files built at render time come with ``artifact.json`` as on the cpu target, the others are named by a
config parameter or the model's default name.

Every model that loads files declares them in ``model.py`` as ``REQUIRED_FILES``: config parameter ->
default path in the version directory (a file, or a directory such as an LLM checkpoint). The renderer
reads that declaration (without importing the model) and refuses a repository where one is neither
written nor listed in ``repository.json`` for the deployment to place; :func:`required` finds it here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST = "artifact.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_verified(version_dir: Path) -> dict[str, Any]:
    """The manifest of ``version_dir``; raises RuntimeError if it or any file it lists is missing or altered."""
    path = Path(version_dir) / MANIFEST
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: render the model repository again (python -m model_repo render)")
    manifest = json.loads(path.read_text())
    for name, expected in manifest.get("files", {}).items():
        file = Path(version_dir) / name
        if not file.is_file():
            raise RuntimeError(f"{file} is missing (listed in {path}); render the model repository again")
        actual = _sha256(file)
        if actual != expected:
            raise RuntimeError(
                f"{file} has sha256 {actual}, but {path} records {expected}: the copy is corrupt; "
                f"render the model repository again"
            )
    return manifest


def required(version_dir: Path, parameters: dict[str, str], declared: dict[str, str], parameter: str) -> Path:
    """The path ``parameter`` names (default ``declared[parameter]``) in ``version_dir``; RuntimeError if absent."""
    path = Path(version_dir) / parameters.get(parameter, declared[parameter])
    if not path.exists():
        raise RuntimeError(
            f"{path} is missing: render the repository (cpu target) or publish it with every file repository.json "
            f"lists (gpu target); the config parameter {parameter} names it"
        )
    return path


def locate(version_dir: Path, parameters: dict[str, str], default_file: str) -> tuple[Path, dict[str, Any]]:
    """(main file, manifest details) of a model version, on either target."""
    version_dir = Path(version_dir)
    if (version_dir / MANIFEST).is_file():
        manifest = load_verified(version_dir)
        return version_dir / manifest["main_file"], manifest.get("details", {})
    main = version_dir / parameters.get("artifact_file", default_file)
    if not main.is_file():
        raise RuntimeError(
            f"{main} is missing and there is no {MANIFEST}: render the repository (cpu target) or sync the "
            f"model's files from the model store (gpu target, see repository.json)"
        )
    return main, {}
