"""A content-addressed artifact store in a local directory (local runs and CI).

Atomicity comes from ``os.rename`` of a whole directory within one filesystem: an artifact is
assembled and verified under ``<root>/.tmp/`` and appears under ``engines/<key>`` in one step.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from engines.store.base import (
    ARTIFACT_DIR,
    ENGINES_PREFIX,
    METADATA_NAME,
    TIMING_CACHE_PREFIX,
    TMP_PREFIX,
    ArtifactMetadata,
    BuildRecord,
    StoreError,
    Verification,
    check_blob_name,
    check_key,
    published_metadata,
)
from engines.store.manifest import describe_directory, metadata_for
from platform_spec.digests import file_sha256


class LocalStore:
    def __init__(self, root: Path | str):
        root = Path(root)
        if not root.is_absolute():
            raise StoreError(f"local store path {str(root)!r} is relative; give an absolute path or a file:// URI")
        self.root = root
        self.uri = root.as_uri()

    # --- paths ---

    def _key_dir(self, key: str) -> Path:
        return self.root / ENGINES_PREFIX / check_key(key)

    def _tmp_dir(self) -> Path:
        path = self.root / TMP_PREFIX / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    def artifact_uri(self, key: str) -> str:
        return (self._key_dir(key) / ARTIFACT_DIR).as_uri() + "/"

    def artifact_path(self, key: str) -> Path:
        return self._key_dir(key) / ARTIFACT_DIR

    # --- reads ---

    def verify(self, key: str) -> Verification:
        key_dir = self._key_dir(key)
        meta_path = key_dir / METADATA_NAME
        if not meta_path.is_file():
            return Verification(None)
        try:
            meta = ArtifactMetadata.from_json(meta_path.read_text())
        except (ValueError, KeyError, TypeError) as exc:
            return Verification(None, f"{meta_path} is unreadable ({exc})")
        if meta.key != key:
            return Verification(None, f"{meta_path} records key {meta.key}, not {key}")
        for f in meta.files:
            path = key_dir / ARTIFACT_DIR / f.path
            if not path.is_file():
                return Verification(None, f"{path} is missing")
            if path.stat().st_size != f.size:
                return Verification(None, f"{path} has {path.stat().st_size} bytes, metadata says {f.size}")
            if file_sha256(path) != f.sha256:
                return Verification(None, f"{path} does not match its recorded sha256 {f.sha256}")
        return Verification(meta)

    def fetch(self, key: str, destination: Path) -> ArtifactMetadata:
        meta = published_metadata(self, key)
        shutil.copytree(self._key_dir(key) / ARTIFACT_DIR, destination, dirs_exist_ok=True)
        return meta

    def keys(self) -> list[str]:
        base = self.root / ENGINES_PREFIX
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / METADATA_NAME).is_file())

    # --- writes ---

    def publish(self, record: BuildRecord, directory: Path) -> ArtifactMetadata:
        key_dir = self._key_dir(record.key)
        files = describe_directory(directory)
        meta = metadata_for(record, files)
        staging = self._tmp_dir()
        try:
            shutil.copytree(directory, staging / ARTIFACT_DIR)
            # Verify the staged copy, not the source: this is what will be served.
            for f in files:
                staged = staging / ARTIFACT_DIR / f.path
                if file_sha256(staged) != f.sha256:
                    raise StoreError(
                        f"staged copy of {f.path} does not match its sha256; the disk under {self.root} "
                        "corrupted the upload; nothing was published"
                    )
            _write_atomic(staging / METADATA_NAME, meta.to_json().encode())
            key_dir.parent.mkdir(parents=True, exist_ok=True)
            if key_dir.exists():
                existing = self.verify(record.key)
                if existing.ok:
                    # Another build of the same key finished first; identical inputs, keep theirs.
                    return existing.metadata
                _remove_tree_atomic(key_dir, self.root)
            os.rename(staging, key_dir)
            staging = None
            return meta
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)

    def delete(self, key: str) -> bool:
        key_dir = self._key_dir(key)
        if not key_dir.exists():
            return False
        _remove_tree_atomic(key_dir, self.root)
        return True

    def get_blob(self, name: str) -> bytes | None:
        path = self.root / TIMING_CACHE_PREFIX / check_blob_name(name)
        return path.read_bytes() if path.is_file() else None

    def put_blob(self, name: str, data: bytes) -> None:
        path = self.root / TIMING_CACHE_PREFIX / check_blob_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, data)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _remove_tree_atomic(path: Path, root: Path) -> None:
    """Make ``path`` vanish in one rename, then delete the renamed copy at leisure."""
    trash = root / TMP_PREFIX / f"deleted-{uuid.uuid4().hex}"
    trash.parent.mkdir(parents=True, exist_ok=True)
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)
