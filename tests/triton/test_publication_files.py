"""The files gpu-target models load beside their code, as the publication places them under Pulumi's mocks:
token tables pinned by the source lock (server-side copy with the pin), built files checked against the
manifest, and clear errors when a pin is missing or a built file changed after rendering."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil

import pulumi
import pytest

from engines.source_lock import SourceLock
from engines.spec import SourceRef
from infra.stack_plan import gpu_specs
from infra.triton.publication import (
    EngineRef,
    ModelRepository,
    ModelRepositoryArgs,
    PublicationError,
    RenderedRepository,
    render_gpu_repository,
    required_engines,
)
from model_repo import catalog
from platform_spec.settings import load_stack_settings
from tests.triton.conftest import triton_mocks
from tools.offline import run_program

ASR_TOKENS, TTS_TOKENS = "export://asr/tokens.txt", "export://tts/tokens.json"
PIN_ASR, PIN_TTS = hashlib.sha256(b"asr tokens").hexdigest(), hashlib.sha256(b"tts tokens").hexdigest()
LOCK = SourceLock(
    {
        ASR_TOKENS: SourceRef("store://exports/parakeet-tdt-0.6b-v2/tokens.txt", PIN_ASR, "locked"),
        TTS_TOKENS: SourceRef("store://exports/fastpitch/tokens.json", PIN_TTS, "locked"),
    }
)


@pytest.fixture(scope="module")
def dev():
    return load_stack_settings("dev")


@pytest.fixture(scope="module")
def rendered(dev, tmp_path_factory) -> RenderedRepository:
    specs = gpu_specs(catalog.select(dev.models))
    return render_gpu_repository(specs, build_root=tmp_path_factory.mktemp("publication"))


def _args(dev, rendered, **changes) -> ModelRepositoryArgs:
    engines: dict = {}
    for pool, engine in required_engines(rendered, dev.gpu_pools):
        engines.setdefault(pool, {})[engine] = EngineRef(key=engine * 2, uri=f"s3://models/engines/{engine}/artifact/")
    args = ModelRepositoryArgs(rendered=rendered, gpu_pools=dev.gpu_pools, bucket="models", engines=engines)
    return dataclasses.replace(args, **changes)


def _publish(args: ModelRepositoryArgs):
    def program():
        repository = ModelRepository("repo", args)
        return {"version": repository.version}

    run = run_program({"aws:region": "us-west-2"}, stack="dev", program=program, mocks=triton_mocks("us-west-2"))
    run.raise_error()
    return run


def _copies(run) -> dict[str, dict]:
    version = run.outputs["version"]
    return {
        c.inputs["destination"].split(f"{version}/", 1)[1]: c.inputs
        for c in run.of_type("pulumi-python:dynamic/triton:StoreCopy")
        if c.inputs["kind"] == "object"
    }


def test_token_tables_are_copied_from_where_the_source_lock_pins_them_with_the_pin(dev, rendered):
    run = _publish(_args(dev, rendered, sources=LOCK))
    copies = _copies(run)
    assert {k: (v["source"], v["sha256"]) for k, v in copies.items()} == {
        "speech/asr/1/tokens.txt": ("s3://models/exports/parakeet-tdt-0.6b-v2/tokens.txt", PIN_ASR),
        "speech/tts/1/tokens.json": ("s3://models/exports/fastpitch/tokens.json", PIN_TTS),
    }
    # A re-pinned table is a new repository version (nothing under a published prefix is rewritten).
    repinned = SourceLock({**LOCK.entries, ASR_TOKENS: dataclasses.replace(LOCK.entries[ASR_TOKENS], sha256="0" * 64)})
    assert _publish(_args(dev, rendered, sources=repinned)).outputs["version"] != run.outputs["version"]


def test_a_lock_without_the_pin_or_pinning_outside_the_store_stops_publication(dev, rendered):
    partial = SourceLock({ASR_TOKENS: LOCK.entries[ASR_TOKENS]})
    unpinned = r"needs export://tts/tokens.json at tts/1/tokens.json, which the source lock .* does not pin; "
    with pytest.raises(PublicationError, match=unpinned + r".*source_lock record export://tts/tokens.json"):
        ModelRepository.check(_args(dev, rendered, sources=partial))
    elsewhere = SourceLock({**LOCK.entries, TTS_TOKENS: SourceRef("file:///tmp/tokens.json", PIN_TTS, "locked")})
    with pytest.raises(PublicationError, match=r"pins export://tts/tokens.json to file:///tmp/tokens.json; .*store://"):
        ModelRepository.check(_args(dev, rendered, sources=elsewhere))


def test_a_built_file_changed_after_rendering_stops_publication(dev, rendered, tmp_path):
    ModelRepository.check(_args(dev, rendered, sources=LOCK))  # as rendered: fine
    tampered = tmp_path / "tampered"
    shutil.copytree(rendered.root, tampered)
    (tampered / "retriever" / "1" / "passages.jsonl").write_text('{"id": "x", "title": "x", "text": "x"}\n')
    changed = r"retriever.*passages.jsonl has sha256 [0-9a-f]{64}, but repository.json records [0-9a-f]{64}"
    with pytest.raises(PublicationError, match=changed):
        ModelRepository.check(_args(dev, dataclasses.replace(rendered, root=tampered), sources=LOCK))
    (tampered / "retriever" / "1" / "index.faiss").unlink()
    with pytest.raises(PublicationError, match=r"index.faiss \(built from generated://faiss-index.*\) is missing"):
        ModelRepository.check(_args(dev, dataclasses.replace(rendered, root=tampered), sources=LOCK))


def test_without_a_lock_entry_the_copy_is_unpinned_and_the_program_says_how_to_pin_it(dev, rendered, monkeypatch):
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, resource=None, *a, **k: warnings.append(message))
    copies = _copies(_publish(_args(dev, rendered, sources=None)))  # the default lock: absent here
    assert copies["speech/asr/1/tokens.txt"]["source"] == "s3://models/sources/asr/tokens.txt"
    assert "sha256" not in copies["speech/asr/1/tokens.txt"]
    assert any(
        "export://asr/tokens.txt is not pinned" in w
        and "python -m engines.source_lock record export://asr/tokens.txt store://sources/asr/tokens.txt" in w
        for w in warnings
    ), warnings
