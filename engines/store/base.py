"""The contract of a content-addressed artifact store, and the metadata kept beside every artifact.

Layout under the store root (a directory or an S3 prefix)::

    engines/<key>/artifact/<files>     what the runtime loads (model.plan, model.onnx, a checkpoint tree)
    engines/<key>/metadata.json        written last: an artifact exists only once its metadata does
    timing-caches/<name>               TensorRT timing caches, one per (GPU SKU, TensorRT version)
    .tmp/<random>/...                  uploads in flight; never read, removed on success and on failure

Publishing is atomic: files go to a temporary location, their checksums are verified there, then
they are moved to the key's location and the metadata (the commit record) is written last. A
reader that finds no metadata, or a file whose size or checksum disagrees with it, treats the
artifact as absent.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

METADATA_NAME = "metadata.json"
ARTIFACT_DIR = "artifact"
ENGINES_PREFIX = "engines"
TIMING_CACHE_PREFIX = "timing-caches"
TMP_PREFIX = ".tmp"
LOG_EXCERPT_CHARS = 4000


class StoreError(RuntimeError):
    """The store cannot be reached or refused an operation; the message names the store and the fix."""


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the artifact directory, POSIX separators
    sha256: str
    size: int


@dataclass(frozen=True)
class BuildRecord:
    """What a build knows about its artifact, before the store adds files, sizes and digests."""

    key: str
    builder: str
    primary: str  # the file (or ".") the runtime loads, relative to the artifact directory
    inputs: dict[str, Any]
    versions: dict[str, str]
    build_seconds: float
    log: str = ""


@dataclass(frozen=True)
class ArtifactMetadata:
    key: str
    builder: str
    sha256: str  # manifest digest of the artifact directory (platform_spec.digests.manifest_digest)
    size_bytes: int
    files: tuple[StoredFile, ...]
    primary: str
    inputs: dict[str, Any]
    versions: dict[str, str]
    build_seconds: float
    log_excerpt: str
    created_at: str
    schema: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ArtifactMetadata:
        raw = json.loads(text)
        raw["files"] = tuple(StoredFile(**f) for f in raw["files"])
        return cls(**raw)


@dataclass(frozen=True)
class Verification:
    """Outcome of checking one key: metadata when every file is intact, else why not."""

    metadata: ArtifactMetadata | None
    problem: str | None = None  # None with metadata None: simply absent

    @property
    def ok(self) -> bool:
        return self.metadata is not None


def log_excerpt(log: str, limit: int = LOG_EXCERPT_CHARS) -> str:
    """The tail of a build log (errors are at the end), marked when cut."""
    if len(log) <= limit:
        return log
    return "[... earlier lines cut ...]\n" + log[-limit:]


class ArtifactStore(Protocol):
    """Implemented by ``LocalStore`` and ``S3Store``."""

    uri: str

    def artifact_uri(self, key: str) -> str:
        """Where the artifact directory of ``key`` lives (ends with '/')."""
        ...

    def verify(self, key: str) -> Verification:
        """Metadata of ``key`` if it is published and every file matches its recorded size and sha256."""
        ...

    def publish(self, record: BuildRecord, directory: Path) -> ArtifactMetadata:
        """Atomically publish the files under ``directory`` as the artifact of ``record.key``."""
        ...

    def fetch(self, key: str, destination: Path) -> ArtifactMetadata:
        """Download the artifact directory of ``key`` into ``destination`` (checksums verified)."""
        ...

    def delete(self, key: str) -> bool:
        """Remove the artifact of ``key``; False when there was nothing to remove."""
        ...

    def get_blob(self, name: str) -> bytes | None: ...

    def put_blob(self, name: str, data: bytes) -> None: ...

    def keys(self) -> list[str]:
        """Keys of published artifacts."""
        ...


def published_metadata(store: ArtifactStore, key: str) -> ArtifactMetadata:
    """The metadata of ``key`` when it is published intact in ``store``; StoreError saying why not (a fetch's
    precondition, the same for every store)."""
    check = store.verify(key)
    if not check.ok:
        raise StoreError(f"artifact {key} is not in {store.uri}: {check.problem or 'not published'}")
    return check.metadata


def check_key(key: str) -> str:
    """Keys are content hashes; anything else (a path, an empty string) is refused before touching storage."""
    if not isinstance(key, str) or len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(f"artifact key {key!r} is not a 64-hex content key (engines.spec.content_key)")
    return key


def check_blob_name(name: str) -> str:
    if not name or "/" in name or name.startswith(".") or len(name) > 200:
        raise ValueError(f"blob name {name!r} must be a plain file name (no '/', not hidden, <= 200 chars)")
    return name
