"""Previews hand dynamic providers inputs that are not known yet. The Python SDK turns the engine's unknown
sentinel into ``pulumi.output.Unknown`` objects (``rpc.deserialize_properties(..., keep_unknowns=True)``)
before calling check and diff; each provider must pass such inputs through, not reject them."""

from __future__ import annotations

import pulumi
import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import rpc

from engines.provider import EngineProvider
from infra.triton.store_copy import StoreCopyProvider
from tests.pulumi_harness import run_stack

ENGINE = "pulumi-python:dynamic/engines:Engine"


@pytest.fixture(scope="module")
def dev_run():
    run = run_stack("dev")
    run.raise_error()
    return run


def _as_engine_sends(inputs: dict, unknown: str) -> dict:
    """``inputs`` as the provider process receives them during a preview in which ``unknown`` is computed."""
    wire = dict(inputs)
    wire[unknown] = rpc.UNKNOWN
    struct = struct_pb2.Struct()
    struct.update(wire)
    return rpc.deserialize_properties(struct, keep_unknowns=True)


def _store_copies(run):
    return [r for r in run.registrations if r.type.endswith("StoreCopy")]


def test_the_sdk_hands_unknowns_as_objects(dev_run):
    engine = next(r for r in dev_run.registrations if r.type == ENGINE)
    news = _as_engine_sends(engine.inputs, "store")
    assert isinstance(news["store"], pulumi.output.Unknown)


def test_engine_check_and_diff_pass_unknown_inputs_through(dev_run):
    engine = next(r for r in dev_run.registrations if r.type == ENGINE)
    provider = EngineProvider()
    for computed in ("store", "kubeconfig"):
        news = _as_engine_sends(engine.inputs, computed)
        result = provider.check({}, news)
        assert result.failures == [], [f.reason for f in result.failures]
        assert isinstance(result.inputs[computed], pulumi.output.Unknown)
    # Known inputs are still checked: the same inputs with a broken store fail.
    broken = provider.check({}, {**engine.inputs, "store": ""})
    assert [f.property for f in broken.failures] == ["store"]
    diff = provider.diff("id", dict(engine.inputs), _as_engine_sends(engine.inputs, "store"))
    assert diff.changes and diff.replaces == ["store"]  # a new store is a new engine, shown before the update


def test_store_copy_check_and_diff_pass_an_unknown_source_through(dev_run):
    copy = _store_copies(dev_run)[0]
    provider = StoreCopyProvider()
    news = _as_engine_sends(copy.inputs, "source")  # the source is a rebuilt Engine's uri
    result = provider.check({}, news)
    assert result.failures == []
    assert provider.check({}, {**copy.inputs, "source": ""}).failures  # a known bad source still fails
    diff = provider.diff("id", dict(copy.inputs), news)
    assert diff.changes and "source" in diff.replaces
