"""The content key of an engine spec: what it hashes, the key, and how two specs differ (for diffs that
name the input forcing a rebuild). ``engines.spec`` re-exports all of it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engines.spec_fields import (
    KEY_SCHEMA,
    calibration_to_dict,
    llm_to_dict,
    normalize,
)

if TYPE_CHECKING:
    from engines.spec import EngineSpec


def key_material(spec: EngineSpec) -> dict[str, Any]:
    """Everything that changes the bytes of the artifact, and nothing else.

    Left out on purpose: the model name (two models with identical inputs share one artifact), every
    URI (moving a file must not rebuild) and the serving image tag (the runtime version stands for it).
    """
    s, t = spec.settings, spec.target
    cal = calibration_to_dict(s.calibration)
    if cal is not None:
        cal.pop("data_uri", None)
    return {
        "schema": KEY_SCHEMA,
        "builder": spec.builder,
        "builder_code_version": spec.builder_code_version,
        "source": {"sha256": spec.source.sha256, "format": spec.source.format},
        "settings": {
            "precision": s.precision,
            "profiles": [[p.name, list(p.min), list(p.opt), list(p.max)] for p in s.profiles],
            "workspace_mib": s.workspace_mib,
            "optimization_level": s.optimization_level,
            "timing_cache": s.timing_cache,
            "strongly_typed": s.strongly_typed,
            "version_compatible": s.version_compatible,
            "hardware_compatibility": s.hardware_compatibility,
            "calibration": cal,
            "llm": llm_to_dict(s.llm),
        },
        "target": {
            "runtime": t.runtime,
            "runtime_version": t.runtime_version,
            "gpu_sku": t.gpu_sku,
            "compute_capability": t.compute_capability,
            "cuda_version": t.cuda_version,
        },
    }


def content_key(spec: EngineSpec) -> str:
    """sha256 over the canonical JSON of ``key_material`` (sorted keys, no whitespace)."""
    canonical = json.dumps(key_material(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# Inputs that are part of the key (a change replaces the engine) vs. those that only update it.
KEYED_INPUTS = (
    "builder",
    "source_sha256",
    "source_format",
    "precision",
    "profiles",
    "workspace_mib",
    "optimization_level",
    "timing_cache",
    "strongly_typed",
    "version_compatible",
    "hardware_compatibility",
    "calibration",
    "llm",
    "runtime",
    "runtime_version",
    "gpu_sku",
    "compute_capability",
    "cuda_version",
    "builder_code_version",
)
UNKEYED_SPEC_INPUTS = ("model", "source_uri", "serving_image")


@dataclass(frozen=True)
class FieldChange:
    name: str
    old: Any
    new: Any
    keyed: bool

    def describe(self) -> str:
        effect = "rebuild" if self.keyed else "in place"
        return f"{self.name}: {self.old!r} -> {self.new!r} ({effect})"


def spec_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """Which spec inputs differ between two property bags, keyed ones first.

    Values are normalized the way the key sees them (Pulumi hands numbers back as floats, drops
    None), so a round trip through the engine is not reported as a change.
    """
    changes = []
    for name in KEYED_INPUTS + UNKEYED_SPEC_INPUTS:
        a, b = normalize(old.get(name)), normalize(new.get(name))
        if a != b:
            changes.append(FieldChange(name, a, b, name in KEYED_INPUTS))
    return sorted(changes, key=lambda c: not c.keyed)
