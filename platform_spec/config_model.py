"""The base of every stack-config model: strict, camelCase in YAML, frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ConfigModel(BaseModel):
    # Unknown keys are errors (a typo must not silently fall back to a default); camelCase keys in
    # YAML, snake_case in Python; frozen so components cannot mutate shared settings.
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )
