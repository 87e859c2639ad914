"""Serving configurations of one model, and swapping them on a running Triton without a restart.

* :func:`generated` -- the configuration this program renders (catalog + overrides, ``model_repo.render``).
* :func:`triton_default` -- Triton's default serving: no dynamic batching (each request executes on its
  own) and one instance; tensors, backend and parameters stay as rendered, so the model code is identical.
* :func:`candidate` -- the generated configuration with a tuning candidate's batching and instance count.

:func:`load` hands a configuration to a server started with ``model_control_mode="explicit"`` through
Triton's repository API (``load`` with a ``config`` override): the model reloads with it in place, the
files of its version directory unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as mc

from model_repo import catalog
from model_repo.catalog import ModelSpec, Override
from model_repo.render import model_config


@dataclass(frozen=True)
class Candidate:
    """One point of a tuning sweep."""

    max_batch_size: int
    max_queue_delay_us: int
    instance_count: int

    def override(self) -> Override:
        if self.max_batch_size == 0:  # a model Triton does not batch: only its instance count is tunable
            return Override(instance_count=self.instance_count)
        return Override(
            max_batch_size=self.max_batch_size,
            max_queue_delay_us=self.max_queue_delay_us,
            instance_count=self.instance_count,
        )

    def label(self) -> str:
        if self.max_batch_size == 0:
            return f"no batching x{self.instance_count}"
        return f"batch<={self.max_batch_size} delay={self.max_queue_delay_us}us x{self.instance_count}"


def to_json(config: mc.ModelConfig) -> dict[str, Any]:
    return json_format.MessageToDict(config, preserving_proto_field_name=True)


def generated(spec: ModelSpec, target: str) -> mc.ModelConfig:
    return model_config(spec, target)


def triton_default(spec: ModelSpec, target: str) -> mc.ModelConfig:
    config = model_config(spec, target)
    config.ClearField("dynamic_batching")
    for group in config.instance_group:
        group.count = 1
    return config


def candidate(spec: ModelSpec, target: str, point: Candidate) -> mc.ModelConfig:
    (tuned,) = catalog.apply_overrides([spec], target, {spec.name: point.override()})
    return model_config(tuned, target)


def describe(config: mc.ModelConfig) -> dict[str, Any]:
    """The serving knobs of a config, for reports."""
    return {
        "max_batch_size": config.max_batch_size,
        "dynamic_batching": config.HasField("dynamic_batching"),
        "preferred_batch_size": list(config.dynamic_batching.preferred_batch_size),
        "max_queue_delay_us": config.dynamic_batching.max_queue_delay_microseconds,
        "instances": sum(g.count for g in config.instance_group),
        "instance_kind": [mc.ModelInstanceGroup.Kind.Name(g.kind) for g in config.instance_group],
    }


def load(client, name: str, config: mc.ModelConfig) -> None:
    """(Re)load ``name`` on a server in explicit model-control mode with ``config``; raise if it is not ready."""
    from tritonclient.utils import InferenceServerException

    try:
        client.load_model(name, config=json.dumps(to_json(config)))
    except InferenceServerException as exc:
        raise RuntimeError(f"loading {name} with {describe(config)} failed: {exc.message()}") from None
    if not client.is_model_ready(name):
        raise RuntimeError(f"{name} is not ready after loading {describe(config)}")
