"""``StoreCopy``: place an artifact of the model store into a published Triton repository by an
S3 server-side copy (a dynamic resource).

Why a dynamic resource and not ``aws.s3.ObjectCopy``: Triton loads a model's files only from its
version directory, so each engine plan must exist at ``<repository>/<model>/1/model.plan`` and each
LLM checkpoint under ``<model>/1/checkpoint/``. A checkpoint is a tree whose file list is known only
once the engine is built (its ``metadata.json`` in the store), and its safetensors shards can pass
5 GB, the limit of the single CopyObject call ``ObjectCopy`` makes. This resource reads the engine's
metadata, checks every source file is present with the recorded size, copies server-side (boto3's
managed copy switches to multipart UploadPartCopy for large objects, so no byte passes through the
machine running Pulumi) and checks each copy's size. The bucket's default SSE-KMS applies to the
copies.

Kinds:
  ``engine-file``  the engine's primary file (a TensorRT plan) -> ``destination`` (an object key)
  ``engine-tree``  every file of the engine artifact -> under ``destination`` (a prefix ending '/')
  ``object``       one object of the store (``store://`` artifacts, and files the source lock pins),
                   pinned to the version read at create time -> ``destination``. With ``sha256`` (the
                   source lock's pin) that version's bytes are hashed first and a mismatch copies
                   nothing: the check reads the object once, so it is meant for the small files
                   that come with an export (token tables), not for multi-GB checkpoints.

Lifecycle: create adopts objects already in place with the right size (a re-run copies nothing);
read re-checks every copied object, so ``pulumi refresh`` finds one deleted out of band; any input
change replaces (a repository version is immutable); delete keeps the objects unless
``delete_on_destroy`` (an old ReplicaSet being rolled back to may still read the old version).
Credentials and region come from the environment (boto3's chain, ``AWS_ENDPOINT_URL_S3`` for an
S3-compatible endpoint) or the ``region`` input; no client or credential is pickled with the provider.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlparse

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from engines.provider import known_or_pending, unknown_paths
from engines.store.base import ARTIFACT_DIR, METADATA_NAME, ArtifactMetadata

PROVIDER_VERSION = "1"
KINDS = ("engine-file", "engine-tree", "object")
_REPLACING = ("bucket", "source", "kind", "destination", "sha256", "provider_version")


class StoreCopyError(RuntimeError):
    """A copy that cannot be made; the message names source, destination and the fix."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise StoreCopyError(f"{uri!r} is not an s3://bucket/key URI")
    return parsed.netloc, parsed.path.lstrip("/")


def engine_metadata_key(artifact_prefix: str) -> str:
    """``<root>engines/<key>/artifact/`` -> ``<root>engines/<key>/metadata.json``."""
    stripped = artifact_prefix.rstrip("/")
    if not stripped.endswith("/" + ARTIFACT_DIR) and stripped != ARTIFACT_DIR:
        raise StoreCopyError(
            f"engine URI prefix {artifact_prefix!r} does not end in '{ARTIFACT_DIR}/'; pass the Engine's `uri` output"
        )
    return stripped[: -len(ARTIFACT_DIR)] + METADATA_NAME


def check_inputs(props: dict[str, Any]) -> list[tuple[str, str]]:
    """(property, reason) for every invalid input."""
    problems: list[tuple[str, str]] = []
    kind = props.get("kind")
    if kind not in KINDS:
        problems.append(("kind", f"{kind!r} is not one of {list(KINDS)}"))
    if not props.get("bucket"):
        problems.append(("bucket", "empty; pass the model-store bucket name"))
    source = props.get("source")
    try:
        parse_s3_uri(source or "")
    except StoreCopyError as exc:
        problems.append(("source", str(exc)))
    else:
        if kind in ("engine-file", "engine-tree"):
            try:
                engine_metadata_key(parse_s3_uri(source)[1])
            except StoreCopyError as exc:
                problems.append(("source", str(exc)))
    destination = props.get("destination") or ""
    if not destination or destination.startswith("/") or ".." in destination.split("/"):
        problems.append(("destination", f"{destination!r} must be a relative key inside the bucket"))
    elif kind == "engine-tree" and not destination.endswith("/"):
        problems.append(("destination", f"{destination!r}: a tree is copied under a prefix ending in '/'"))
    elif kind in ("engine-file", "object") and destination.endswith("/"):
        problems.append(("destination", f"{destination!r}: a file is copied to an object key, not a prefix"))
    sha256 = props.get("sha256")
    if sha256 is not None:
        if kind != "object":
            problems.append(("sha256", "only kind 'object' takes a pin; an engine's files are checked by its metadata"))
        elif not (isinstance(sha256, str) and len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)):
            problems.append(("sha256", f"{sha256!r} is not a lower-case hex sha256 (64 characters)"))
    return problems


class StoreCopyProvider(ResourceProvider):
    """Server-side copies from the model store; see the module docstring."""

    def __init__(self, client_factory: Any = None):
        # Only tests pass a factory; the deployed provider builds its client in each method.
        self._client_factory = client_factory

    def _client(self, props: dict[str, Any]) -> Any:
        if self._client_factory is not None:
            return self._client_factory()
        import boto3

        return boto3.session.Session(region_name=props.get("region") or None).client("s3")

    # --- plan: which (source, destination, size) pairs ------------------------------------------

    def _plan(self, client: Any, props: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """The copies to make and the source's identity (engine sha256 or object version)."""
        src_bucket, src_key = parse_s3_uri(props["source"])
        kind, destination = props["kind"], props["destination"]
        if kind == "object":
            head = self._head(client, src_bucket, src_key)
            if head is None:
                raise StoreCopyError(
                    f"{props['source']} does not exist; upload it to the model store before publishing "
                    f"(it is copied to {destination})"
                )
            version = head.get("VersionId") or ""
            identity = version or head.get("ETag", "").strip('"')
            if props.get("sha256"):
                self._check_pin(client, src_bucket, src_key, version, props)
                identity = props["sha256"]
            return [
                {"src_bucket": src_bucket, "src_key": src_key, "src_version": version, "dest": destination,
                 "size": head["ContentLength"]}
            ], identity  # fmt: skip
        prefix = src_key if src_key.endswith("/") else src_key + "/"
        metadata = self._engine_metadata(client, src_bucket, engine_metadata_key(prefix), props["source"])
        if kind == "engine-file":
            if metadata.primary == ".":
                raise StoreCopyError(
                    f"engine {metadata.key} at {props['source']} is a directory artifact (primary '.'); "
                    f"copy it with kind engine-tree to a prefix, not to {destination}"
                )
            files = [f for f in metadata.files if f.path == metadata.primary]
            plan = [{"src_bucket": src_bucket, "src_key": prefix + f.path, "src_version": "", "dest": destination,
                     "size": f.size} for f in files]  # fmt: skip
        else:
            plan = [{"src_bucket": src_bucket, "src_key": prefix + f.path, "src_version": "",
                     "dest": destination + f.path, "size": f.size} for f in metadata.files]  # fmt: skip
        for item in plan:
            head = self._head(client, item["src_bucket"], item["src_key"])
            if head is None or head["ContentLength"] != item["size"]:
                found = "missing" if head is None else f"{head['ContentLength']} bytes"
                raise StoreCopyError(
                    f"engine {metadata.key}: s3://{item['src_bucket']}/{item['src_key']} is {found}, its metadata "
                    f"records {item['size']} bytes; the artifact is damaged, rebuild it (pulumi refresh, then up)"
                )
        return plan, metadata.sha256

    @staticmethod
    def _check_pin(client: Any, bucket: str, key: str, version: str, props: dict[str, Any]) -> None:
        """The object version about to be copied has the pinned sha256, or StoreCopyError."""
        request = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version else {})}
        digest = hashlib.sha256()
        for chunk in client.get_object(**request)["Body"].iter_chunks(1 << 20):
            digest.update(chunk)
        if digest.hexdigest() != props["sha256"]:
            raise StoreCopyError(
                f"{props['source']} has sha256 {digest.hexdigest()}, but it is pinned to {props['sha256']} (the "
                f"source lock); nothing was copied to {props['destination']}. Upload the pinned file again, or "
                "re-pin it with `python -m engines.source_lock record <catalog uri> <store path>`"
            )

    def _engine_metadata(self, client: Any, bucket: str, key: str, source: str) -> ArtifactMetadata:
        from botocore.exceptions import ClientError

        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise StoreCopyError(
                    f"no engine at {source}: s3://{bucket}/{key} does not exist (an artifact is published only "
                    "with its metadata); build the engine first"
                ) from None
            raise StoreCopyError(f"cannot read s3://{bucket}/{key}: {exc}") from None
        try:
            return ArtifactMetadata.from_json(body)
        except (ValueError, TypeError, KeyError) as exc:
            raise StoreCopyError(f"s3://{bucket}/{key} is not engine metadata ({exc}); rebuild the engine") from None

    @staticmethod
    def _head(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    # --- the resource lifecycle -----------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> Any:
        from pulumi.dynamic import CheckFailure, CheckResult

        unknown = unknown_paths({k: v for k, v in news.items() if k != "__provider"})
        if unknown:
            # Preview: a source (an Engine's uri) or the bucket is computed in this update; the inputs go
            # back unvalidated and are checked when the update runs.
            pulumi.log.info(f"store copy {news.get('destination')}: {', '.join(unknown)} not known yet; checked then")
            return CheckResult(news, [])
        failures = [CheckFailure(prop, reason) for prop, reason in check_inputs(news)]
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        news = known_or_pending(news)  # an unknown source (a rebuilt Engine's uri) is a change: replace
        changed = [k for k in (*_REPLACING, "delete_on_destroy", "region") if olds.get(k) != news.get(k)]
        replaces = [k for k in changed if k in _REPLACING]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        client = self._client(props)
        plan, identity = self._plan(client, props)
        bucket = props["bucket"]
        copied: list[str] = []
        try:
            for item in plan:
                existing = self._head(client, bucket, item["dest"])
                if existing is not None and existing["ContentLength"] == item["size"]:
                    continue  # already in place (an interrupted earlier run, or an adopted copy)
                source = {"Bucket": item["src_bucket"], "Key": item["src_key"]}
                if item["src_version"]:
                    source["VersionId"] = item["src_version"]
                client.copy(source, bucket, item["dest"])
                copied.append(item["dest"])
                landed = self._head(client, bucket, item["dest"])
                if landed is None or landed["ContentLength"] != item["size"]:
                    raise StoreCopyError(
                        f"copy of s3://{item['src_bucket']}/{item['src_key']} to s3://{bucket}/{item['dest']} "
                        f"holds {None if landed is None else landed['ContentLength']} bytes, expected {item['size']}"
                    )
        except BaseException:
            # Leave nothing half-published: remove what this call copied.
            for key in copied:
                client.delete_object(Bucket=bucket, Key=key)
            raise
        objects = [{"key": item["dest"], "size": item["size"]} for item in plan]
        outs = {
            **props,
            "objects": objects,
            "bytes": sum(o["size"] for o in objects),
            "copied": len(copied),
            "source_identity": identity,
        }
        resource_id = hashlib.sha256(
            json.dumps([bucket, props["destination"], identity], sort_keys=True).encode()
        ).hexdigest()[:32]
        return CreateResult(resource_id, outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        client = self._client(props)
        for obj in props.get("objects") or []:
            head = self._head(client, props["bucket"], obj["key"])
            if head is None or head["ContentLength"] != obj["size"]:
                return ReadResult(None, {})  # gone (or replaced out of band): refresh drops it, up re-copies
        return ReadResult(id_, props)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # Only non-replacing inputs (delete_on_destroy, region) reach here; the copies stay as they are.
        carried = {k: olds[k] for k in ("objects", "bytes", "copied", "source_identity") if k in olds}
        return UpdateResult({**news, **carried})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if not props.get("delete_on_destroy"):
            return
        client = self._client(props)
        for obj in props.get("objects") or []:
            client.delete_object(Bucket=props["bucket"], Key=obj["key"])  # absent keys are fine in S3


class StoreCopy(Resource, module="triton", name="StoreCopy"):
    """One artifact placed into a published repository version; see the module docstring."""

    objects: pulumi.Output[list]
    bytes: pulumi.Output[int]
    source_identity: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        bucket: pulumi.Input[str],
        source: pulumi.Input[str],
        kind: str,
        destination: pulumi.Input[str],
        region: str | None = None,
        delete_on_destroy: bool = False,
        sha256: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        if kind not in KINDS:
            raise StoreCopyError(f"StoreCopy {name}: kind {kind!r} is not one of {list(KINDS)}")
        super().__init__(
            StoreCopyProvider(),
            name,
            {
                "bucket": bucket,
                "source": source,
                "kind": kind,
                "destination": destination,
                "region": region,
                "delete_on_destroy": delete_on_destroy,
                "sha256": sha256,
                "provider_version": PROVIDER_VERSION,
                "objects": None,
                "bytes": None,
                "copied": None,
                "source_identity": None,
            },
            opts,
        )
