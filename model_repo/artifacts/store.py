"""The content-addressed cache of CPU artifacts, and how an entry is placed into a model version.

An artifact is built once per *key* into ``<cache>/<role>/<key>/`` and reused by every later render.
The key hashes everything that decides its bytes: the catalog URI, the digests of the source files it
is built from, the builder's own source code (so editing a builder rebuilds, no version number to
forget) and the versions of the libraries that write the files (an ONNX export from another torch can
differ). Each entry holds its files plus ``artifact.json``: the key, the weights label and the sha256 of
every file; a reused entry is re-hashed against it, so a corrupted cache is rebuilt, never served.

Writes are atomic at both ends: an entry is built in a temporary sibling directory and renamed into
place (a crash leaves only a ``.tmp-*`` directory, never a half entry), and files are copied into a
model version under temporary names and renamed, the manifest last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_spec.digests import file_sha256

MANIFEST = "artifact.json"
CACHE_ENV = "MODEL_REPO_ARTIFACT_CACHE"


class ArtifactError(ValueError):
    """An artifact could not be built or placed; the message names the model, the URI and the fix."""


def default_cache_dir() -> Path:
    """``$MODEL_REPO_ARTIFACT_CACHE``, else ``$XDG_CACHE_HOME/triton-platform/artifacts`` (``~/.cache``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "triton-platform" / "artifacts"


@dataclass(frozen=True)
class Recipe:
    """How to build one artifact.

    ``inputs`` is everything besides the builder code that decides the bytes (URI, parameters, source
    digests, library versions); ``build(out_dir)`` writes the files into an empty directory;
    ``main_file`` is the file the model loads (what :func:`place` returns).
    """

    model: str
    role: str
    uri: str
    weights: str
    main_file: str
    builder_source: str  # the builder module's code, hashed into the key
    inputs: Mapping[str, Any]
    build: Callable[[Path], None]
    details: Mapping[str, Any] = field(default_factory=dict)  # extra facts recorded in the manifest

    @property
    def key(self) -> str:
        material = {
            "role": self.role,
            "uri": self.uri,
            "inputs": self.inputs,
            "builder": hashlib.sha256(self.builder_source.encode()).hexdigest(),
        }
        return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _intact(directory: Path, key: str) -> bool:
    manifest = read_manifest(directory)
    if manifest is None or manifest.get("key") != key:
        return False
    files = manifest.get("files", {})
    return all((directory / name).is_file() and file_sha256(directory / name) == sha for name, sha in files.items())


def ensure_built(recipe: Recipe, cache_dir: Path) -> Path:
    """The cache entry for ``recipe``, built now if it is missing or fails its hashes."""
    key = recipe.key
    entry = cache_dir / recipe.role / key[:24]
    if _intact(entry, key):
        return entry
    entry.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=entry.parent))
    try:
        recipe.build(scratch)
        if not (scratch / recipe.main_file).is_file():
            raise ArtifactError(
                f"model {recipe.model!r} ({recipe.uri}): the builder did not write {recipe.main_file!r}"
            )
        files = {p.name: file_sha256(p) for p in sorted(scratch.iterdir()) if p.is_file()}
        manifest = {
            "model": recipe.model,
            "role": recipe.role,
            "uri": recipe.uri,
            "weights": recipe.weights,
            "main_file": recipe.main_file,
            "key": key,
            "inputs": recipe.inputs,
            "details": dict(recipe.details),
            "files": files,
        }
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        if entry.exists():  # a corrupt entry (failed its hashes): replace it
            shutil.rmtree(entry)
        try:
            os.rename(scratch, entry)
        except OSError:
            # Another render built the same key concurrently and won the rename; theirs is identical.
            if not _intact(entry, key):
                raise
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(
            f"model {recipe.model!r}: building {recipe.uri} failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return entry


def place(entry: Path, dest_dir: Path) -> Path:
    """Copy a cache entry's files into ``dest_dir`` (a model version directory); return its main file.

    Each file is copied under a temporary name and renamed; ``artifact.json`` goes last, so a version
    directory with a manifest always has every file the manifest lists.
    """
    manifest = read_manifest(entry)
    if manifest is None:
        raise ArtifactError(f"{entry} has no readable {MANIFEST}; delete the directory and render again")
    dest_dir.mkdir(parents=True, exist_ok=True)
    (dest_dir / MANIFEST).unlink(missing_ok=True)
    for name in [*manifest["files"], MANIFEST]:
        tmp = dest_dir / f".{name}.tmp-{os.getpid()}"
        try:
            shutil.copyfile(entry / name, tmp)
            os.replace(tmp, dest_dir / name)
        finally:
            tmp.unlink(missing_ok=True)
    return dest_dir / manifest["main_file"]
