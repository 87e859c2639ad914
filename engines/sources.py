"""Fetch a build's source (ONNX file, HF checkpoint, LoRA adapter, calibration set) and prove its digest.

A source is addressed by URI and pinned by sha256: ``file:///abs/path`` or ``/abs/path`` is read in
place, ``s3://bucket/key`` is downloaded (a key ending in ``/`` is a directory tree), ``store://path`` is
resolved against the engine store's root. Whatever the
bytes, the build only starts when their digest equals the pinned one, so a key always describes
what was actually built.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from engines.spec import SourceRef
from engines.store.s3 import S3Options, shared_client
from platform_spec.digests import tree_digest


class SourceError(RuntimeError):
    """A source that cannot be read or is not the pinned one; the message names the URI and the fix."""


def resolve_uri(uri: str, store_uri: str | None) -> str:
    """``store://<path>`` names a path inside the engine store's root (imported sources, exports,
    calibration sets live beside the engines); every other URI is returned unchanged."""
    if not uri.startswith("store://"):
        return uri
    if not store_uri:
        raise SourceError(f"{uri!r} is relative to the model store, but no store is known here")
    return f"{store_uri.rstrip('/')}/{uri[len('store://') :]}"


def fetch_source(
    source: SourceRef,
    workdir: Path,
    s3: S3Options | None = None,
    what: str = "source_uri",
    store_uri: str | None = None,
) -> Path:
    """A local path holding exactly the pinned bytes of ``source``."""
    parsed = urlparse(resolve_uri(source.uri, store_uri))
    if parsed.scheme == "s3":
        path = download_s3(parsed.netloc, parsed.path.lstrip("/"), Path(workdir) / "source", s3 or S3Options(), what)
    elif parsed.scheme in ("file", ""):
        path = Path(parsed.path if parsed.scheme == "file" else parsed.geturl())
        if not path.is_absolute():
            raise SourceError(f"{what} {source.uri!r} is a relative path; give an absolute path or a file:// URI")
        if not path.exists():
            raise SourceError(f"{what} {source.uri!r} does not exist; fix the URI in the model catalog")
    else:
        raise SourceError(f"{what} {source.uri!r} has scheme {parsed.scheme!r}; use file://, an absolute path or s3://")
    actual = tree_digest(path)
    if actual != source.sha256:
        raise SourceError(
            f"{what} {source.uri!r} has sha256 {actual}, but the spec pins {source.sha256}; the file changed "
            "or the pin is stale: restore the pinned file, or update the digest in the catalog if the change "
            "is intended"
        )
    return path


def download_s3(bucket: str, key: str, destination: Path, options: S3Options, what: str) -> Path:
    from botocore.exceptions import BotoCoreError, ClientError

    client = shared_client(options)
    uri = f"s3://{bucket}/{key}"
    try:
        if key.endswith("/") or not key:
            paginator = client.get_paginator("list_objects_v2")
            pages = paginator.paginate(Bucket=bucket, Prefix=key)
            objects = [o["Key"] for page in pages for o in page.get("Contents", [])]
            if not objects:
                raise SourceError(f"{what} {uri!r} holds no objects; fix the URI in the model catalog")
            for obj in objects:
                target = destination / obj[len(key) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, obj, str(target))
            return destination
        destination.mkdir(parents=True, exist_ok=True)
        target = destination / Path(key).name
        client.download_file(bucket, key, str(target))
        return target
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise SourceError(f"{what} {uri!r} cannot be read ({code}); check the URI and the role's s3:GetObject") from exc
    except BotoCoreError as exc:
        raise SourceError(f"{what} {uri!r} cannot be read ({exc}); check credentials and the endpoint") from exc
