"""Resolve the catalog's artifact URIs to what a builder reads.

``package://<module>/<path>`` is a file inside an installed Python package; when the catalog pins a
sha256 the installed file must match it (a different wheel version is a different model, so it fails
loudly instead of serving something else). ``generated://<kind>?<params>`` and
``export://<model>/<file>?from=<uri>`` carry their parameters in the query string.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from model_repo.artifacts.store import ArtifactError
from platform_spec.digests import file_sha256


def query_params(uri: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(uri).query, keep_blank_values=True))


def int_param(model: str, uri: str, name: str, default: int | None = None) -> int:
    """An integer query parameter (or ``default``); an ArtifactError names the model, URI and parameter."""
    value = query_params(uri).get(name, default)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ArtifactError(
            f"model {model!r}: artifact URI {uri!r} needs an integer parameter {name}=..., got {value!r}"
        ) from None


def package_file(model: str, uri: str, sha256: str | None = None) -> Path:
    """The installed file a ``package://module/path`` URI names, checked against ``sha256`` when given."""
    parts = urlsplit(uri)
    if parts.scheme != "package":
        raise ArtifactError(f"model {model!r}: expected a package:// URI, got {uri!r}")
    module, rel = parts.netloc, parts.path.lstrip("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactError(
            f"model {model!r}: {uri} needs the Python package {module!r}, which is not installed; "
            f"install it with pip (see requirements.txt)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise ArtifactError(f"model {model!r}: {uri}: {path} does not exist in the installed {module!r}")
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256:
            raise ArtifactError(
                f"model {model!r}: {path} has sha256 {actual}, but the catalog pins {sha256} for {uri}; "
                f"install the pinned version of {module!r} (requirements.txt) or update the catalog pin"
            )
    return path


def package_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"
