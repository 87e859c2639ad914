"""The source lock: catalog artifact URIs -> where the pinned bytes live in the store, and their sha256.

The catalog names sources abstractly (``hf://org/model``, ``export://asr/encoder.onnx``,
``store://sources/...``). An engine key needs the exact bytes, so every such URI an engine builds from
is recorded here once, when the checkpoint is imported into the model store or the ONNX graph is
exported, as ``{"uri": "store://...", "sha256": "..."}`` (``store://`` paths are relative to the
engine store's root). ``pulumi preview`` fails with the command to run when an entry is missing,
instead of building from bytes nobody pinned.

Record an entry (computes the digest of a file or directory tree, local or on S3)::

    python -m engines.source_lock record hf://meta-llama/Llama-3.1-8B-Instruct \\
        store://sources/hf/meta-llama/Llama-3.1-8B-Instruct/ --store-uri s3://<bucket>/
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from engines.sources import SourceError, download_s3, resolve_uri
from engines.spec import SourceRef
from engines.store.s3 import S3Options
from platform_spec.digests import tree_digest

DEFAULT_LOCK = Path(__file__).resolve().parent / "sources.lock.json"
SCHEMA = 1


class SourceLockError(ValueError):
    pass


@dataclass(frozen=True)
class SourceLock:
    entries: dict[str, SourceRef]
    path: Path | None = None

    def resolve(self, catalog_uri: str, fmt: str, needed_by: str) -> SourceRef:
        entry = self.entries.get(catalog_uri)
        if entry is None:
            where = self.path or DEFAULT_LOCK
            raise SourceLockError(
                f"{needed_by}: source {catalog_uri!r} has no pinned digest in {where}; import it into the model "
                f"store and pin it: `python -m tools.bootstrap --stack <stack> --source {catalog_uri}=<local path>` "
                f"(or, already in the store: `python -m engines.source_lock record {catalog_uri} <store://path>`)"
            )
        return SourceRef(entry.uri, entry.sha256, fmt)


def load_lock(path: Path = DEFAULT_LOCK) -> SourceLock:
    """Read the lock (an absent file is an empty lock: nothing is pinned yet)."""
    path = Path(path)
    if not path.is_file():
        return SourceLock({}, path)
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SourceLockError(f"{path} is not valid JSON ({exc}); restore it from version control") from None
    if document.get("schema") != SCHEMA or not isinstance(document.get("sources"), dict):
        raise SourceLockError(f"{path}: expected {{'schema': {SCHEMA}, 'sources': {{...}}}}")
    entries = {}
    for uri, entry in document["sources"].items():
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(sha, str) or len(sha) != 64 or not isinstance(entry.get("uri"), str):
            raise SourceLockError(f"{path}: entry {uri!r} needs 'uri' and a 64-hex 'sha256'")
        entries[uri] = SourceRef(entry["uri"], sha, "locked")
    return SourceLock(entries, path)


def save_lock(lock: SourceLock, path: Path = DEFAULT_LOCK) -> None:
    document = {
        "schema": SCHEMA,
        "sources": {u: {"uri": r.uri, "sha256": r.sha256} for u, r in sorted(lock.entries.items())},
    }
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)


def digest_of(uri: str, store_uri: str | None = None, s3: S3Options | None = None) -> str:
    """sha256 of a file, or the tree digest of a directory, at a local path or on S3."""
    resolved = resolve_uri(uri, store_uri)
    parsed = urlparse(resolved)
    if parsed.scheme == "s3":
        with tempfile.TemporaryDirectory() as tmp:
            local = download_s3(parsed.netloc, parsed.path.lstrip("/"), Path(tmp) / "d", s3 or S3Options(), uri)
            return tree_digest(local)
    path = Path(parsed.path if parsed.scheme == "file" else resolved)
    if not path.exists():
        raise SourceError(f"{uri!r} ({resolved}) does not exist")
    return tree_digest(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pin a catalog source's bytes for engine builds.")
    sub = parser.add_subparsers(dest="command", required=True)
    record = sub.add_parser("record", help="compute the digest of LOCATION and pin it for CATALOG_URI")
    record.add_argument("catalog_uri")
    record.add_argument("location", help="store://path, s3://bucket/key, file:///abs or /abs path")
    record.add_argument("--store-uri", help="the engine store root that store:// paths are relative to")
    record.add_argument("--lock", type=Path, default=DEFAULT_LOCK)
    args = parser.parse_args(argv)
    try:
        lock = load_lock(args.lock)
        sha = digest_of(args.location, args.store_uri)
    except (SourceLockError, SourceError) as exc:
        print(exc, file=sys.stderr)
        return 1
    entries = {**lock.entries, args.catalog_uri: SourceRef(args.location, sha, "locked")}
    save_lock(SourceLock(entries), args.lock)
    print(f"{args.catalog_uri} -> {args.location} sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
