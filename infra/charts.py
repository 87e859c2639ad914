"""The Helm charts the program installs come from the vendored archives under ``charts/``, checked against
their pinned sha256 before any release is declared.

What the tests render (``tests/infra/test_chart_rendering.py``) is what `pulumi up` installs, and an
update needs no chart repository to be reachable. The archive path is relative to the project root,
the working directory of the Pulumi program and of its providers, so it is the same on every machine.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any

from platform_spec.settings import REPO_ROOT


class ChartArchiveError(ValueError):
    """A vendored chart archive is missing or is not the pinned one."""


@functools.cache
def _verified(archive: str, sha256: str) -> None:
    path = REPO_ROOT / archive
    if not path.is_file():
        raise ChartArchiveError(f"chart archive {archive} is missing; restore it from version control (git checkout)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise ChartArchiveError(
            f"chart archive {archive} has sha256 {digest}, not the pinned {sha256} (platform_spec/versions.py); "
            "restore it from version control, or re-vendor the chart and update the pin and charts/PROVENANCE.md"
        )


def release_chart(pin: Mapping[str, str]) -> dict[str, Any]:
    """``chart``/``version`` arguments of a ``helm.v3.Release`` for a pinned, vendored chart."""
    _verified(pin["archive"], pin["sha256"])
    return {"chart": pin["archive"], "version": pin["version"]}
