"""The build Job's code: this package and the ground-floor modules it imports, as one deterministic zip.

The Job runs the NVIDIA TensorRT image of the serving release unmodified (its TensorRT is the one
Triton serves with); the builder code reaches it as a zip in a ConfigMap, imported from PYTHONPATH
through zipimport. Fixed timestamps and sorted entries make the zip byte-identical for identical
code, so an unchanged checkout produces an unchanged ConfigMap.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import engines

_FIXED_TIME = (2020, 1, 1, 0, 0, 0)
# ConfigMaps hold at most 1 MiB; the code is a few dozen KB, this guards against shipping data.
MAX_BUNDLE_BYTES = 900 * 1024
JOB_GROUND_FLOOR_MODULES = ("__init__.py", "digests.py", "gpus.py", "versions.py")


def code_bundle() -> bytes:
    package = Path(engines.__file__).resolve().parent
    repo = package.parent
    entries: dict[str, bytes] = {}
    for path in sorted(package.rglob("*.py")):
        entries[path.relative_to(repo).as_posix()] = path.read_bytes()
    # The engines read GPU facts, pinned versions and digests from the ground floor, under their real
    # import path; the settings parser stays out (the Job's image has no pydantic and reads no config).
    for name in JOB_GROUND_FLOOR_MODULES:
        entries[f"platform_spec/{name}"] = (repo / "platform_spec" / name).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name])
    data = buffer.getvalue()
    if len(data) > MAX_BUNDLE_BYTES:
        raise ValueError(f"engine code bundle is {len(data)} bytes, over the {MAX_BUNDLE_BYTES} ConfigMap budget")
    return data
