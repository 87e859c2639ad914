"""The S3 store against a real S3 API server (moto in server mode on a free loopback port)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import boto3
import pytest
from pulumi.dynamic import Config, ConfigureRequest

from engines.provider import EngineProvider
from engines.store import BuildRecord, S3Options, S3Store, StoreError
from engines.store.s3 import MIN_PART_BYTES
from tests.engines.conftest import cpu_spec
from tests.engines.test_engine_provider_lifecycle import as_engine_sees, engine_inputs
from tests.s3_server import moto_s3_server, use_test_credentials

KEY = "c" * 64


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    use_test_credentials(monkeypatch)  # the store reads them through boto3's normal chain
    name = f"models-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return name


def _client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def _all_keys(endpoint, bucket) -> list[str]:
    listing = _client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def _artifact(tmp_path: Path, big_bytes: int) -> Path:
    directory = tmp_path / "artifact"
    (directory / "sub").mkdir(parents=True)
    (directory / "model.plan").write_bytes(os.urandom(big_bytes))
    (directory / "sub" / "config.yaml").write_text("a: 1\n")
    return directory


def _record(key: str = KEY) -> BuildRecord:
    return BuildRecord(key, "tensorrt", "model.plan", {"precision": "fp16"}, {"tensorrt": "10.13.3"}, 12.5, "log\n")


def test_publish_verify_fetch_delete_with_multipart_checksums(s3_endpoint, bucket, tmp_path):
    store = S3Store(bucket, "platform", S3Options(endpoint_url=s3_endpoint), part_bytes=MIN_PART_BYTES)
    directory = _artifact(tmp_path, 2 * MIN_PART_BYTES + 12345)  # three parts: composite checksum path
    meta = store.publish(_record(), directory)
    assert meta.size_bytes == 2 * MIN_PART_BYTES + 12345 + 5 and meta.build_seconds == 12.5
    assert _all_keys(s3_endpoint, bucket) == [
        f"platform/engines/{KEY}/artifact/model.plan",
        f"platform/engines/{KEY}/artifact/sub/config.yaml",
        f"platform/engines/{KEY}/metadata.json",
    ]  # and nothing left under .tmp/
    assert store.artifact_uri(KEY) == f"s3://{bucket}/platform/engines/{KEY}/artifact/"
    assert store.verify(KEY).metadata == meta and store.keys() == [KEY]

    fetched = tmp_path / "fetched"
    store.fetch(KEY, fetched)
    assert (fetched / "model.plan").read_bytes() == (directory / "model.plan").read_bytes()

    # Publishing the same key again (a concurrent build) keeps the first artifact.
    assert store.publish(_record(), directory).created_at == meta.created_at

    # An object replaced out of band no longer carries the recorded checksum: the artifact reads as damaged.
    replaced = f"platform/engines/{KEY}/artifact/sub/config.yaml"
    _client(s3_endpoint).put_object(Bucket=bucket, Key=replaced, Body=b"b: 2\n")
    check = store.verify(KEY)
    assert not check.ok and "does not carry its recorded sha256" in check.problem

    assert store.delete(KEY) is True
    assert _all_keys(s3_endpoint, bucket) == [] and store.delete(KEY) is False
    assert not store.verify(KEY).ok and store.verify(KEY).problem is None


def test_interrupted_upload_publishes_nothing(s3_endpoint, bucket, tmp_path):
    sent = []

    def dropped_connection(key, count):
        sent.append(count)
        if sum(sent) > MIN_PART_BYTES:
            raise ConnectionResetError("connection reset by peer")

    store = S3Store(
        bucket, "", S3Options(endpoint_url=s3_endpoint), part_bytes=MIN_PART_BYTES, progress=dropped_connection
    )
    with pytest.raises(ConnectionResetError):
        store.publish(_record(), _artifact(tmp_path, 3 * MIN_PART_BYTES))
    assert _all_keys(s3_endpoint, bucket) == []
    assert _client(s3_endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert not store.verify(KEY).ok and store.keys() == []


def test_timing_cache_blobs_and_clear_errors(s3_endpoint, bucket):
    store = S3Store(bucket, "p", S3Options(endpoint_url=s3_endpoint))
    assert store.get_blob("h100-sm90-trt10.13.3.cache") is None
    store.put_blob("h100-sm90-trt10.13.3.cache", b"\x00timing")
    assert store.get_blob("h100-sm90-trt10.13.3.cache") == b"\x00timing"
    with pytest.raises(ValueError, match="plain file name"):
        store.put_blob("../escape", b"x")

    missing = S3Store("no-such-bucket-here", "", S3Options(endpoint_url=s3_endpoint))
    with pytest.raises(StoreError, match="NoSuchBucket: create the bucket or fix the store URI"):
        missing.verify(KEY)


def test_provider_lifecycle_on_s3(s3_endpoint, bucket, mlp_onnx):
    provider = EngineProvider()
    provider.configure(ConfigureRequest(Config({"engines:s3EndpointUrl": s3_endpoint}, "triton-platform")))
    props = provider.check({}, engine_inputs(cpu_spec(mlp_onnx), f"s3://{bucket}/engines-test")).inputs
    created = provider.create(props)
    assert created.outs["cache_hit"] is False
    assert created.outs["uri"] == f"s3://{bucket}/engines-test/engines/{created.id}/artifact/"
    assert provider.create(props).outs["cache_hit"] is True

    state = as_engine_sees(created.outs)
    assert provider.read(created.id, state).id == created.id
    _client(s3_endpoint).delete_object(Bucket=bucket, Key=f"engines-test/engines/{created.id}/artifact/model.onnx")
    assert provider.read(created.id, state).id == ""

    provider.delete(created.id, as_engine_sees({**created.outs, "delete_artifacts": True}))
    assert _all_keys(s3_endpoint, bucket) == []
