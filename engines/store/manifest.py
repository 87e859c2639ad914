"""Turn a build directory plus a build record into the metadata the store publishes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from engines.store.base import ArtifactMetadata, BuildRecord, StoredFile, log_excerpt
from platform_spec.digests import file_sha256, list_files, manifest_digest


def describe_directory(directory: Path) -> tuple[StoredFile, ...]:
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"artifact directory {directory} does not exist; the builder produced nothing to publish")
    files = tuple(
        StoredFile(p.relative_to(directory).as_posix(), file_sha256(p), p.stat().st_size) for p in list_files(directory)
    )
    if not files:
        raise ValueError(f"artifact directory {directory} is empty; the builder produced nothing to publish")
    return files


def metadata_for(record: BuildRecord, files: tuple[StoredFile, ...]) -> ArtifactMetadata:
    names = {f.path for f in files}
    if record.primary != "." and record.primary not in names:
        raise ValueError(f"primary file {record.primary!r} is not among the artifact's files {sorted(names)}")
    return ArtifactMetadata(
        key=record.key,
        builder=record.builder,
        sha256=manifest_digest((f.path, f.sha256) for f in files),
        size_bytes=sum(f.size for f in files),
        files=files,
        primary=record.primary,
        inputs=dict(record.inputs),
        versions=dict(record.versions),
        build_seconds=round(record.build_seconds, 3),
        log_excerpt=log_excerpt(record.log),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
