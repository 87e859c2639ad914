"""A content-addressed artifact store in S3 (cloud stacks), same layout and contract as ``LocalStore``.

Publishing uploads every file under ``<prefix>.tmp/<random>/`` with an S3 SHA-256 checksum, checks
the checksum S3 computed against the one computed here (for multipart uploads: the composite
checksum over the same part size), copies the verified objects to ``engines/<key>/artifact/`` and
writes ``metadata.json`` last. Until that last write nothing is published; on any failure the
temporary objects and any copied files are removed.

Credentials and endpoint come from boto3's usual chain (environment, profile, Pod Identity/IRSA)
or from ``S3Options`` filled by the provider's ``configure``; the client is created on first use
and never leaves this object.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from platform_spec.digests import CHUNK, file_sha256

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest multipart part
DEFAULT_PART_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class S3Options:
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None


_CLIENTS: dict[S3Options, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def shared_client(options: S3Options) -> Any:
    """One boto3 S3 client per option set and process (creating one costs ~150 ms; clients are
    thread-safe). Lives in this process only: nothing here is reachable from a pickled provider."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(options)
        if client is None:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session(profile_name=options.profile, region_name=options.region)
            client = session.client(
                "s3",
                endpoint_url=options.endpoint_url,
                config=Config(retries={"max_attempts": 5, "mode": "standard"}),
            )
            _CLIENTS[options] = client
        return client


class S3Store:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        options: S3Options | None = None,
        part_bytes: int = DEFAULT_PART_BYTES,
        progress: Callable[[str, int], None] | None = None,
    ):
        if not bucket:
            raise StoreError("S3 store URI has no bucket; write it as s3://<bucket>/<prefix>")
        if part_bytes < MIN_PART_BYTES:
            raise StoreError(f"part_bytes {part_bytes} is below S3's 5 MiB minimum part size")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.options = options or S3Options()
        self.part_bytes = part_bytes
        self.progress = progress
        self.uri = f"s3://{bucket}/{self.prefix}"
        self._client: Any = None

    # --- client ---

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = shared_client(self.options)
        return self._client

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(multipart_threshold=self.part_bytes, multipart_chunksize=self.part_bytes)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one S3 call, turning botocore's errors into a StoreError that names the store and a fix."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return fn(*args, **kwargs)
        except NoCredentialsError:
            raise StoreError(
                f"{what} on {self.uri}: no AWS credentials; set AWS_PROFILE/AWS_ACCESS_KEY_ID or run where a "
                "Pod Identity/IRSA role is attached"
            ) from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            hint = {
                "NoSuchBucket": "create the bucket or fix the store URI",
                "AccessDenied": "grant the role s3:GetObject/PutObject/DeleteObject/ListBucket on this prefix",
                "BadDigest": "the upload was corrupted in transit; retry",
            }.get(code, "check the bucket, prefix and permissions")
            raise StoreError(f"{what} on {self.uri} failed with {code}: {hint}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"{what} on {self.uri} failed: {exc}; check the endpoint and network") from exc

    # --- keys ---

    def _key_prefix(self, key: str) -> str:
        return f"{self.prefix}{ENGINES_PREFIX}/{check_key(key)}/"

    def artifact_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key_prefix(key)}{ARTIFACT_DIR}/"

    def _head(self, key: str, **kwargs: Any) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    # --- reads ---

    def verify(self, key: str) -> Verification:
        prefix = self._key_prefix(key)
        raw = self._call("read metadata", self._get, prefix + METADATA_NAME)
        if raw is None:
            return Verification(None)
        try:
            meta = ArtifactMetadata.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            return Verification(None, f"{self.uri}{ENGINES_PREFIX}/{key}/{METADATA_NAME} is unreadable ({exc})")
        for f in meta.files:
            obj_key = f"{prefix}{ARTIFACT_DIR}/{f.path}"
            head = self._call("check artifact file", self._head, obj_key)
            where = f"s3://{self.bucket}/{obj_key}"
            if head is None:
                return Verification(None, f"{where} is missing")
            if head["ContentLength"] != f.size:
                return Verification(None, f"{where} has {head['ContentLength']} bytes, metadata says {f.size}")
            # The sha256 recorded on the object was checked against S3's own checksum at publish time.
            if head.get("Metadata", {}).get("sha256") != f.sha256:
                return Verification(None, f"{where} does not carry its recorded sha256 {f.sha256}")
        return Verification(meta)

    def fetch(self, key: str, destination: Path) -> ArtifactMetadata:
        meta = published_metadata(self, key)
        prefix = self._key_prefix(key)
        for f in meta.files:
            target = Path(destination) / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            self._call(
                "download",
                self.client.download_file,
                self.bucket,
                f"{prefix}{ARTIFACT_DIR}/{f.path}",
                str(target),
                Config=self._transfer_config(),
            )
            if file_sha256(target) != f.sha256:
                raise StoreError(f"downloaded {f.path} of {key} does not match its sha256; retry the download")
        return meta

    def keys(self) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        out = []
        listing = self.prefix + ENGINES_PREFIX + "/"
        pages = self._call("list", lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=listing)))
        for page in pages:
            for obj in page.get("Contents", []):
                parts = obj["Key"][len(self.prefix) :].split("/")
                if len(parts) == 3 and parts[2] == METADATA_NAME:
                    out.append(parts[1])
        return sorted(out)

    # --- writes ---

    def publish(self, record: BuildRecord, directory: Path) -> ArtifactMetadata:
        existing = self.verify(record.key)
        if existing.ok:
            return existing.metadata  # same key, same inputs: a concurrent build already published it
        files = describe_directory(directory)
        meta = metadata_for(record, files)
        prefix = self._key_prefix(record.key)
        staging = f"{self.prefix}{TMP_PREFIX}/{uuid.uuid4().hex}/"
        staged: list[str] = []
        copied: list[str] = []
        committed = False
        try:
            for f in files:
                tmp_key = staging + f.path
                staged.append(tmp_key)
                self._upload_verified(Path(directory) / f.path, tmp_key, f.sha256, f.size)
            for f in files:
                final_key = f"{prefix}{ARTIFACT_DIR}/{f.path}"
                copied.append(final_key)
                self._call(
                    "publish file",
                    self.client.copy,
                    {"Bucket": self.bucket, "Key": staging + f.path},
                    self.bucket,
                    final_key,
                    ExtraArgs={"MetadataDirective": "COPY", "ChecksumAlgorithm": "SHA256"},
                    Config=self._transfer_config(),
                )
                head = self._call("check published file", self._head, final_key)
                if head is None or head["ContentLength"] != f.size or head["Metadata"].get("sha256") != f.sha256:
                    raise StoreError(f"published copy of {f.path} does not match what was verified; nothing published")
            body = meta.to_json().encode()
            # The commit record: S3 rejects the write if the body does not match this checksum.
            self._call(
                "write metadata",
                self.client.put_object,
                Bucket=self.bucket,
                Key=prefix + METADATA_NAME,
                Body=body,
                ContentType="application/json",
                ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode(),
            )
            committed = True
            return meta
        finally:
            # Best effort: a cleanup failure must not hide the error that brought us here.
            try:
                self._delete_keys(staged)
                if not committed:
                    self._delete_keys(copied)
            except Exception:  # noqa: BLE001
                pass

    def _upload_verified(self, path: Path, key: str, sha256: str, size: int) -> None:
        def on_bytes(count: int) -> None:
            if self.progress is not None:
                self.progress(key, count)

        self._call(
            "upload",
            self.client.upload_file,
            str(path),
            self.bucket,
            key,
            ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": sha256}},
            Config=self._transfer_config(),
            Callback=on_bytes,
        )
        head = self._call("check upload", self._head, key, ChecksumMode="ENABLED")
        if head is None:
            raise StoreError(f"upload of {path.name} to {self.uri} vanished before it could be verified; retry")
        got = (head.get("ChecksumSHA256") or "").split("-")[0]
        want = expected_s3_checksum(path, size, self.part_bytes)
        if head["ContentLength"] != size or got != want:
            raise StoreError(
                f"upload of {path.name} to {self.uri} does not match the local file "
                f"(size {head['ContentLength']} vs {size}, checksum {got!r} vs {want!r}); nothing was published"
            )

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            if batch:
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )

    def delete(self, key: str) -> bool:
        prefix = self._key_prefix(key)
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call("list artifact", lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=prefix)))
        keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        if not keys:
            return False
        # Unpublish first (metadata is the commit record), then remove the files.
        meta_key = prefix + METADATA_NAME
        if meta_key in keys:
            self._call("unpublish", self.client.delete_object, Bucket=self.bucket, Key=meta_key)
        self._call("delete artifact", self._delete_keys, [k for k in keys if k != meta_key])
        return True

    def get_blob(self, name: str) -> bytes | None:
        return self._call("read blob", self._get, f"{self.prefix}{TIMING_CACHE_PREFIX}/{check_blob_name(name)}")

    def put_blob(self, name: str, data: bytes) -> None:
        self._call(
            "write blob",
            self.client.put_object,
            Bucket=self.bucket,
            Key=f"{self.prefix}{TIMING_CACHE_PREFIX}/{check_blob_name(name)}",
            Body=data,
            ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
        )


def expected_s3_checksum(path: Path, size: int, part_bytes: int) -> str:
    """The base64 SHA-256 S3 reports for an upload of ``path`` with this part size.

    One PUT: the object's sha256. Multipart: sha256 over the concatenated part digests (S3's
    composite checksum; S3 appends ``-<parts>``, which the caller strips).
    """
    if size < part_bytes:
        digest = bytes.fromhex(file_sha256(path))
        return base64.b64encode(digest).decode()
    parts = []
    with open(path, "rb") as handle:
        while True:
            part = hashlib.sha256()
            remaining = part_bytes
            while remaining:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    break
                part.update(chunk)
                remaining -= len(chunk)
            if remaining == part_bytes:
                break
            parts.append(part.digest())
            if remaining:
                break
    return base64.b64encode(hashlib.sha256(b"".join(parts)).digest()).decode()
