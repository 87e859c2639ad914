"""Before a stack's first `pulumi up`: create (or adopt) its model store, import the engine sources, pin them.

    python -m tools.bootstrap --stack dev                       # what the stack still needs, and the command
    python -m tools.bootstrap --stack dev \\
        --source hf://meta-llama/Llama-3.1-8B-Instruct=/data/llama-3.1-8b-instruct \\
        --source export://asr/encoder.onnx=exports/asr/encoder.onnx  ...

Engine keys hash the exact bytes of every source, so the stack's plan needs each source pinned in its
source lock (``engines.sourcesLock``), and the bytes must sit in the model store where the build Jobs and
the repository publication read them (``store://sources/...``). The store is the stack's own bucket,
``<project>-<stack>-models-<account>`` (``infra.stores.model_store_bucket``): this command creates it when
it does not exist yet (versioned, encrypted, public access blocked, tagged as the stack tags it), and the
stack adopts it on its first `up` (the ``import`` resource option). Then it uploads each ``--source``
(a file or a directory tree: a checkpoint, an ONNX export) under ``sources/``, each object checked by
S3 against its SHA-256, and records the local digest as the pin. The lock is written once, at the end, and only
when every upload succeeded: an interrupted run leaves the lock as it was.

Checkpoints (``hf://``) come from your own copy (this command never downloads from a hub); ``export://``
files come from the export step of their model (NeMo's ``.export()`` for ASR and TTS, the embedding
model's ONNX export). Exit status: 0 when the stack has every pin, 1 on an AWS or upload error, 2 when
sources are still missing (each listed with the flag to pass).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from engines.catalog_engines import unpinned_sources
from engines.source_lock import SourceLock, SourceLockError, load_lock, save_lock
from engines.spec import SourceRef
from engines.store.s3 import S3Options, shared_client
from infra.program import platform_tags
from infra.stack_plan import gpu_specs
from infra.stores import model_store_bucket
from model_repo import catalog
from platform_spec.digests import list_files, tree_digest
from platform_spec.settings import PROJECT, REPO_ROOT, Settings, SettingsError, load_stack_settings

SOURCES_PREFIX = "sources/"


class BootstrapError(RuntimeError):
    """AWS refused, or an upload did not arrive intact; the message names the bucket or source."""


def needed_sources(settings: Settings, lock: SourceLock) -> list[str]:
    """Catalog URIs the stack builds engines from or publishes as files, not pinned in ``lock``."""
    models = catalog.select(settings.models)
    missing = set(unpinned_sources(models, settings.gpu_pools, lock, settings.llm_variants))
    for spec in gpu_specs(models):
        for artifact in spec.target("gpu").files.values():
            if artifact.scheme in ("export", "hf") and artifact.uri not in lock.entries:
                missing.add(artifact.uri)
    return sorted(missing)


def store_path(catalog_uri: str) -> str:
    """Where a source lives in the store: ``hf://org/name`` -> ``sources/hf/org/name``, ``export://asr/x.onnx``
    -> ``sources/asr/x.onnx`` (where the publication looks for exports), ``store://path`` -> ``path``."""
    scheme, _, rest = catalog_uri.partition("://")
    if scheme == "store":
        return rest.rstrip("/")
    if scheme == "export":
        return f"{SOURCES_PREFIX}{rest}"
    return f"{SOURCES_PREFIX}{scheme}/{rest}"


def ensure_bucket(client, bucket: str, region: str, tags: dict[str, str]) -> bool:
    """Create the model store if absent (True), or adopt the existing one (False)."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise BootstrapError(f"bucket {bucket}: {exc}; is it another account's, or are you not allowed?") from None
    create = {"Bucket": bucket}
    if region != "us-east-1":  # S3's one region that rejects its own name as a location constraint
        create["CreateBucketConfiguration"] = {"LocationConstraint": region}
    client.create_bucket(**create)
    client.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
        },
    )  # fmt: skip
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    # SSE-KMS with the account's S3 key until the stack takes over with its own key on the first `up`.
    default_encryption = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}
    client.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [default_encryption]})
    # The stack's tags exactly: the first `up` adopts the bucket only if its declared state matches.
    client.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
    return True


def upload(client, bucket: str, catalog_uri: str, local: Path) -> str:
    """Upload a file or tree under its store path; return the ``store://`` location."""
    key = store_path(catalog_uri)
    # S3 verifies each object against the SHA-256 sent with it and refuses a corrupted upload, so the pin
    # (the local digest) is what the store holds, without reading gigabytes of checkpoint back.
    checked = {"ChecksumAlgorithm": "SHA256"}
    if local.is_file():
        client.upload_file(str(local), bucket, key, ExtraArgs=checked)
    else:
        for path in list_files(local):
            client.upload_file(str(path), bucket, f"{key}/{path.relative_to(local).as_posix()}", ExtraArgs=checked)
        key += "/"
    return f"store://{key}"


def _parse_source(text: str) -> tuple[str, Path]:
    uri, sep, path = text.partition("=")
    if not sep or "://" not in uri or not path:
        raise argparse.ArgumentTypeError(f"--source {text!r}: write CATALOG_URI=LOCAL_PATH")
    return uri, Path(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bootstrap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--source", action="append", type=_parse_source, default=[], metavar="CATALOG_URI=PATH")
    parser.add_argument("--lock", type=Path, help="the source lock to write (default: the stack's engines.sourcesLock)")
    parser.add_argument("--account-id", help="the AWS account (default: the caller's, from STS)")
    parser.add_argument("--endpoint-url", help="an S3 API endpoint other than AWS's (tests)")
    args = parser.parse_args(argv)
    try:
        settings = load_stack_settings(args.stack)
        lock_path = args.lock or REPO_ROOT / settings.engines.sources_lock
        lock = load_lock(lock_path)
    except (SettingsError, SourceLockError) as exc:
        print(exc, file=sys.stderr)
        return 2
    missing = needed_sources(settings, lock)
    given = dict(args.source)
    unknown = sorted(set(given) - set(missing) - set(lock.entries))
    if unknown:
        print(f"--source for {unknown}: the stack does not need these; it needs {missing}", file=sys.stderr)
        return 2
    for uri, path in given.items():
        if not path.exists():
            print(f"--source {uri}={path}: no such file or directory", file=sys.stderr)
            return 2
    if not given:
        return _report(missing, lock_path, args.stack)
    name = f"{PROJECT}-{args.stack}"
    try:
        account = args.account_id or _caller_account(args.endpoint_url, settings.region)
        bucket = model_store_bucket(name, account)
        client = shared_client(S3Options(endpoint_url=args.endpoint_url, region=settings.region))
        created = ensure_bucket(client, bucket, settings.region, platform_tags(settings, name))
        print(f"model store s3://{bucket}/ {'created' if created else 'exists, adopted'}", flush=True)
        entries = dict(lock.entries)
        for uri, path in given.items():
            digest = tree_digest(path)
            location = upload(client, bucket, uri, path)
            entries[uri] = SourceRef(location, digest, "locked")
            print(f"  pinned {uri} -> {location} sha256 {digest}", flush=True)
    except (BootstrapError, ValueError, OSError, BotoCoreError, ClientError) as exc:
        print(f"bootstrap failed, lock unchanged: {exc}", file=sys.stderr)
        return 1
    save_lock(SourceLock(entries), lock_path)
    return _report([u for u in missing if u not in entries], lock_path, args.stack)


def _report(still: list[str], lock_path: Path, stack: str) -> int:
    if still:
        print(f"{len(still)} source(s) of stack {stack} to import; run python -m tools.bootstrap --stack {stack} "
              "with:", file=sys.stderr)  # fmt: skip
        for uri in still:
            print(f"  --source {uri}=<local path>", file=sys.stderr)
        return 2
    print(f"every source pinned in {lock_path}; commit it, then: pulumi up --stack {stack}")
    return 0


def _caller_account(endpoint_url: str | None, region: str) -> str:
    import boto3

    sts = boto3.client("sts", region_name=region, endpoint_url=endpoint_url)
    return sts.get_caller_identity()["Account"]


if __name__ == "__main__":
    sys.exit(main())
