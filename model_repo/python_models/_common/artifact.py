"""Load a model version's ``artifact.json`` and check every file against its recorded sha256.

A model refuses to start on a corrupted or partial copy (a failed sync, a disk error) instead of
serving wrong results; the error names the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST = "artifact.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_verified(version_dir: Path) -> dict[str, Any]:
    """The manifest of ``version_dir``; raises RuntimeError if it or any file it lists is missing or altered."""
    path = Path(version_dir) / MANIFEST
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: render the model repository again (python -m model_repo render)")
    manifest = json.loads(path.read_text())
    for name, expected in manifest.get("files", {}).items():
        file = Path(version_dir) / name
        if not file.is_file():
            raise RuntimeError(f"{file} is missing (listed in {path}); render the model repository again")
        actual = _sha256(file)
        if actual != expected:
            raise RuntimeError(
                f"{file} has sha256 {actual}, but {path} records {expected}: the copy is corrupt; "
                f"render the model repository again"
            )
    return manifest
