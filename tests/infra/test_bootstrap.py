"""`python -m tools.bootstrap`: a new stack's model store is created before the first `up`, the engine sources
are uploaded into it and pinned, and the program then plans against exactly that store and those pins.
Against a real S3 API (moto's server on loopback)."""

from __future__ import annotations

import json

import boto3
import pytest

from infra.stores import model_store_bucket
from platform_spec.digests import tree_digest
from tests.pulumi_harness import run_stack
from tests.s3_server import moto_s3_server, use_test_credentials
from tools import bootstrap
from tools.offline import ACCOUNT_ID

ENGINE = "pulumi-python:dynamic/engines:Engine"


@pytest.fixture
def s3_endpoint(monkeypatch):
    use_test_credentials(monkeypatch)
    with moto_s3_server() as endpoint:
        yield endpoint


def _sources(tmp_path, uris):
    """Small stand-ins for each source: a directory tree for checkpoints and adapters, a file otherwise."""
    given = []
    for i, uri in enumerate(uris):
        local = tmp_path / "sources" / str(i)
        if uri.startswith("hf://") or uri.rstrip("/").endswith("support"):
            (local / "sub").mkdir(parents=True)
            (local / "config.json").write_text(json.dumps({"source": uri}))
            (local / "sub" / "weights.bin").write_bytes(bytes(range(256)) * (i + 1))
        else:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(f"bytes of {uri}".encode())
        given.append((uri, local))
    return given


def test_bootstrap_creates_the_store_uploads_and_pins_every_source(s3_endpoint, tmp_path, capsys):
    lock = tmp_path / "sources.lock.json"
    assert bootstrap.main(["--stack", "dev", "--lock", str(lock)]) == 2  # nothing pinned: the list, no AWS call
    needed = [line.split()[1].split("=")[0] for line in capsys.readouterr().err.splitlines() if "--source " in line]
    assert "hf://meta-llama/Llama-3.1-8B-Instruct" in needed and "export://asr/encoder.onnx" in needed

    sources = _sources(tmp_path, needed)
    argv = ["--stack", "dev", "--lock", str(lock), "--account-id", ACCOUNT_ID, "--endpoint-url", s3_endpoint]
    for uri, local in sources:
        argv += ["--source", f"{uri}={local}"]
    assert bootstrap.main(argv) == 0, capsys.readouterr().err

    bucket = model_store_bucket("triton-platform-dev", ACCOUNT_ID)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-west-2")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert tags == {"environment": "dev", "owner": "ml-platform", "platform.io/stack": "triton-platform-dev"}
    pins = json.loads(lock.read_text())["sources"]
    assert set(pins) == set(needed)
    for uri, local in sources:
        assert pins[uri]["sha256"] == tree_digest(local)
        key = pins[uri]["uri"].removeprefix("store://")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"]
        assert listed >= 1, uri
    assert pins["export://asr/encoder.onnx"]["uri"] == "store://sources/asr/encoder.onnx"
    assert (
        pins["hf://meta-llama/Llama-3.1-8B-Instruct"]["uri"] == "store://sources/hf/meta-llama/Llama-3.1-8B-Instruct/"
    )

    # A second run adopts the store and changes nothing that is pinned.
    assert bootstrap.main(["--stack", "dev", "--lock", str(lock)]) == 0
    assert "every source pinned" in capsys.readouterr().out

    # The program plans against these pins and adopts this very bucket.
    run = run_stack("dev", overrides={"triton-platform:engines.sourcesLock": str(lock)})
    run.raise_error()
    store = next(r for r in run.of_type("aws:s3/bucket:Bucket") if r.name.endswith("-models"))
    assert store.inputs["bucket"] == bucket and store.import_id == bucket
    assert "forceDestroy" in store.ignore_changes
    encoder = next(r for r in run.of_type(ENGINE) if r.name == "engine-asr_encoder-speech")
    assert encoder.inputs["source_uri"] == "store://sources/asr/encoder.onnx"
    assert encoder.inputs["source_sha256"] == pins["export://asr/encoder.onnx"]["sha256"]


def test_a_failed_upload_leaves_the_lock_as_it_was(s3_endpoint, tmp_path, capsys):
    lock = tmp_path / "sources.lock.json"
    lock.write_text(json.dumps({"schema": 1, "sources": {}}))
    local = tmp_path / "encoder.onnx"
    local.write_bytes(b"onnx")
    # An account whose bucket name S3 refuses (too long after the stack prefix): nothing uploaded, lock unchanged.
    argv = ["--stack", "dev", "--lock", str(lock), "--account-id", "1" * 40, "--endpoint-url", s3_endpoint,
            "--source", f"export://asr/encoder.onnx={local}"]  # fmt: skip
    assert bootstrap.main(argv) == 1
    assert "bootstrap failed, lock unchanged" in capsys.readouterr().err
    assert json.loads(lock.read_text()) == {"schema": 1, "sources": {}}


def test_a_source_the_stack_does_not_need_is_refused(tmp_path, capsys):
    argv = ["--stack", "dev", "--lock", str(tmp_path / "l.json"), "--source", f"hf://someone/else={tmp_path}"]
    assert bootstrap.main(argv) == 2
    assert "the stack does not need these" in capsys.readouterr().err
