"""sha256 of files and directory trees, the digests every source and artifact is checked against.

A directory (an HF checkpoint, a LoRA adapter, a multi-file artifact) is digested as the sha256 of
its manifest: one ``"<sha256>  <relative path>\\n"`` line per file, sorted by path, exactly what
``find . -type f | sort | xargs sha256sum`` prints with ``./`` stripped. A single-file source's
digest is that file's own sha256 (``sha256sum model.onnx``). A stored artifact is always a directory
and its digest is its manifest digest; the per-file sha256s sit in its metadata.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

CHUNK = 8 * 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_digest(entries: Iterable[tuple[str, str]]) -> str:
    """Digest of (relative path, sha256) pairs; independent of the order they are given in."""
    lines = "".join(f"{sha}  {rel}\n" for rel, sha in sorted(entries))
    return hashlib.sha256(lines.encode()).hexdigest()


def list_files(root: Path) -> list[Path]:
    """Regular files under ``root``, sorted by relative path (links are refused: they escape the tree)."""
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise ValueError(f"{path} is a symbolic link; artifacts and sources must hold regular files only")
        if path.is_file():
            out.append(path)
    return out


def tree_digest(root: Path) -> str:
    """The digest of a file (its sha256) or of a directory (its manifest digest)."""
    root = Path(root)
    if root.is_file():
        return file_sha256(root)
    return manifest_digest((p.relative_to(root).as_posix(), file_sha256(p)) for p in list_files(root))
