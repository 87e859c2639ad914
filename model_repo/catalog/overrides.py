"""Per-target overrides of batching and instance counts, written by the tuning sweep."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from model_repo.catalog.models import (
    CATALOG,
)
from model_repo.catalog.schema import (
    TARGETS,
    Batching,
    CatalogError,
    ModelSpec,
)

OVERRIDES_DIR = Path(__file__).resolve().parent.parent / "overrides"

# --- per-target overrides (written by the tuning sweep) -------------------------------------------

_OVERRIDE_KEYS = ("max_batch_size", "preferred_batch_sizes", "max_queue_delay_us", "instance_count")


@dataclass(frozen=True)
class Override:
    max_batch_size: int | None = None
    preferred_batch_sizes: tuple[int, ...] | None = None
    max_queue_delay_us: int | None = None
    instance_count: int | None = None


def load_overrides(target: str, directory: Path = OVERRIDES_DIR) -> dict[str, Override]:
    """Read ``<directory>/<target>.yaml`` (absent -> no overrides) and validate it against the catalog.

    Format::

        models:
          embed: {max_batch_size: 32, preferred_batch_sizes: [8, 16], max_queue_delay_us: 500, instance_count: 2}
    """
    if target not in TARGETS:
        raise CatalogError(f"target {target!r} is not one of {list(TARGETS)}")
    path = directory / f"{target}.yaml"
    if not path.is_file():
        return {}
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML ({exc}); fix the file or delete it") from None
    return parse_overrides(document, str(path))


def parse_overrides(document: Any, source: str) -> dict[str, Override]:
    if not isinstance(document, Mapping) or set(document) - {"models"}:
        raise CatalogError(f"{source}: expected a mapping with one key 'models' (name -> settings)")
    models = document.get("models") or {}
    if not isinstance(models, Mapping):
        raise CatalogError(f"{source}: 'models' must map model names to settings, got {type(models).__name__}")
    problems: list[str] = []
    result: dict[str, Override] = {}
    for name, values in models.items():
        key = f"{source}: models.{name}"
        if name not in CATALOG:
            problems.append(f"{key}: unknown model; catalog models are {sorted(CATALOG)}")
            continue
        if not isinstance(values, Mapping):
            problems.append(f"{key}: expected a mapping of {list(_OVERRIDE_KEYS)}")
            continue
        unknown = sorted(set(values) - set(_OVERRIDE_KEYS))
        if unknown:
            problems.append(f"{key}: unknown keys {unknown}; allowed {list(_OVERRIDE_KEYS)}")
            continue
        parsed: dict[str, Any] = {}
        for k in ("max_batch_size", "max_queue_delay_us", "instance_count"):
            if k in values:
                v = values[k]
                low = 1 if k in ("max_batch_size", "instance_count") else 0
                if isinstance(v, bool) or not isinstance(v, int) or v < low:
                    problems.append(f"{key}.{k} = {v!r}: must be an integer >= {low}")
                else:
                    parsed[k] = v
        if "preferred_batch_sizes" in values:
            v = values["preferred_batch_sizes"]
            if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v):
                problems.append(f"{key}.preferred_batch_sizes = {v!r}: must be a list of integers >= 1")
            else:
                parsed["preferred_batch_sizes"] = tuple(v)
        spec = CATALOG[name]
        if spec.batching.max_batch_size == 0 and any(
            k in parsed for k in ("max_batch_size", "preferred_batch_sizes", "max_queue_delay_us")
        ):
            problems.append(
                f"{key}: {name} does not use Triton batching (max_batch_size 0: "
                f"{'decoupled stream' if spec.decoupled else 'whole requests'}); only instance_count can be tuned"
            )
            continue
        max_batch = parsed.get("max_batch_size", spec.batching.max_batch_size)
        too_big = [p for p in parsed.get("preferred_batch_sizes", ()) if p > max_batch]
        if too_big:
            problems.append(f"{key}.preferred_batch_sizes {too_big} exceed max_batch_size {max_batch}")
            continue
        result[name] = Override(**parsed)
    if problems:
        raise CatalogError("invalid catalog overrides:\n" + "\n".join(f"  - {p}" for p in problems))
    return result


def apply_overrides(specs: Iterable[ModelSpec], target: str, overrides: Mapping[str, Override]) -> list[ModelSpec]:
    """Return the specs with ``target``'s batching and instance count replaced where overridden."""
    out = []
    for spec in specs:
        ov = overrides.get(spec.name)
        if ov is None:
            out.append(spec)
            continue
        serving = spec.target(target)
        base = serving.batching or spec.batching
        max_batch = ov.max_batch_size if ov.max_batch_size is not None else base.max_batch_size
        preferred = ov.preferred_batch_sizes
        if preferred is None:
            # Keep the catalog's preferred sizes that still fit a lowered max batch.
            preferred = tuple(p for p in base.preferred_batch_sizes if p <= max_batch)
        batching = Batching(
            max_batch,
            preferred,
            ov.max_queue_delay_us if ov.max_queue_delay_us is not None else base.max_queue_delay_us,
        )
        group = serving.instance_group
        if ov.instance_count is not None:
            group = dataclasses.replace(group, count=ov.instance_count)
        new_serving = dataclasses.replace(serving, batching=batching, instance_group=group)
        out.append(dataclasses.replace(spec, serving=MappingProxyType({**spec.serving, target: new_serving})))
    return out
