"""Content-addressed artifact stores: a local directory or an S3 prefix, chosen by URI."""

from __future__ import annotations

from urllib.parse import urlparse

from engines.store.base import (
    ArtifactMetadata,
    ArtifactStore,
    BuildRecord,
    StoredFile,
    StoreError,
    Verification,
)
from engines.store.local import LocalStore
from engines.store.s3 import S3Options, S3Store

__all__ = [
    "ArtifactMetadata",
    "ArtifactStore",
    "BuildRecord",
    "LocalStore",
    "S3Options",
    "S3Store",
    "StoreError",
    "StoredFile",
    "Verification",
    "open_store",
]


def open_store(uri: str, s3: S3Options | None = None) -> ArtifactStore:
    """``file:///abs/dir`` or ``/abs/dir`` -> LocalStore; ``s3://bucket/prefix`` -> S3Store."""
    if not isinstance(uri, str) or not uri:
        raise StoreError(f"store URI {uri!r} is empty; use file:///abs/dir or s3://bucket/prefix")
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return S3Store(parsed.netloc, parsed.path.lstrip("/"), s3)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"store URI {uri!r} names host {parsed.netloc!r}; a file URI is file:///abs/dir")
        return LocalStore(parsed.path)
    if parsed.scheme == "":
        return LocalStore(uri)
    raise StoreError(f"store URI {uri!r} has scheme {parsed.scheme!r}; use file:///abs/dir or s3://bucket/prefix")
