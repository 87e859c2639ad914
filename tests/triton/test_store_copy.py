"""StoreCopy: engine artifacts placed into a repository version by server-side copy, against a real
S3 API (moto's server on a loopback port), with artifacts published by the engine store's own code."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import boto3
import dill
import pytest

from engines.store import S3Store
from engines.store.base import BuildRecord
from engines.store.s3 import S3Options
from infra.triton.store_copy import StoreCopyError, StoreCopyProvider, check_inputs
from tests.s3_server import moto_s3_server, use_test_credentials

PLAN_KEY = "a" * 64
LLM_KEY = "b" * 64
DEST = "triton-repositories/0123456789abcdef0123/speech/asr_encoder/1/model.plan"


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    # The provider builds its own client from the environment, as it does under `pulumi up`.
    use_test_credentials(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    name = f"models-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def _client():
    return boto3.client("s3", region_name="us-east-1")


def _keys(bucket: str, prefix: str = "") -> list[str]:
    listing = _client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def _body(bucket: str, key: str) -> bytes:
    return _client().get_object(Bucket=bucket, Key=key)["Body"].read()


def _publish(bucket: str, tmp_path: Path, key: str, files: dict[str, bytes], primary: str, builder: str) -> S3Store:
    directory = tmp_path / key[:8]
    for rel, data in files.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_bytes(data)
    store = S3Store(bucket, "engine-store", S3Options(region="us-east-1"))
    store.publish(BuildRecord(key, builder, primary, {}, {}, 1.0, "log\n"), directory)
    return store


def _props(bucket: str, source: str, kind: str, destination: str, **extra) -> dict:
    return {"bucket": bucket, "source": source, "kind": kind, "destination": destination,
            "region": "us-east-1", "delete_on_destroy": False, "provider_version": "1", **extra}  # fmt: skip


def test_plan_is_copied_server_side_adopted_on_rerun_and_refresh_sees_deletion(bucket, tmp_path):
    plan = os.urandom(9 * 1024 * 1024)  # above boto3's multipart threshold: exercises UploadPartCopy
    store = _publish(bucket, tmp_path, PLAN_KEY, {"model.plan": plan, "build.log": b"ok\n"}, "model.plan", "tensorrt")
    provider = StoreCopyProvider()
    props = _props(bucket, store.artifact_uri(PLAN_KEY), "engine-file", DEST)
    assert check_inputs(props) == []

    created = provider.create(props)
    assert _body(bucket, DEST) == plan
    assert created.outs["objects"] == [{"key": DEST, "size": len(plan)}]
    assert created.outs["copied"] == 1 and created.outs["source_identity"] == store.verify(PLAN_KEY).metadata.sha256
    assert _keys(bucket, "triton-repositories/") == [DEST]  # only the primary file, not the build log

    again = provider.create(props)
    assert again.outs["copied"] == 0 and again.id == created.id  # already in place: adopted, nothing copied

    assert provider.read(created.id, created.outs).id == created.id
    _client().delete_object(Bucket=bucket, Key=DEST)
    assert provider.read(created.id, created.outs).id is None  # refresh drops it; the next up copies again

    provider.create(props)
    provider.delete(created.id, created.outs)  # kept by default: an old ReplicaSet may still read it
    assert _keys(bucket, "triton-repositories/") == [DEST]
    provider.delete(created.id, {**created.outs, "delete_on_destroy": True})
    assert _keys(bucket, "triton-repositories/") == []


def test_llm_checkpoint_tree_is_copied_whole_under_the_version_directory(bucket, tmp_path):
    files = {
        "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
        "model-00001-of-00002.safetensors": os.urandom(1024),
        "model-00002-of-00002.safetensors": os.urandom(2048),
        "tokenizer/tokenizer.json": b"{}",
    }
    store = _publish(bucket, tmp_path, LLM_KEY, files, ".", "tensorrt_llm")
    dest = "triton-repositories/0123456789abcdef0123/llm/llm_chat/1/checkpoint/"
    created = StoreCopyProvider().create(_props(bucket, store.artifact_uri(LLM_KEY), "engine-tree", dest))
    assert _keys(bucket, dest) == sorted(dest + rel for rel in files)
    for rel, data in files.items():
        assert _body(bucket, dest + rel) == data
    assert created.outs["bytes"] == sum(len(d) for d in files.values())

    with pytest.raises(StoreCopyError, match="directory artifact .* kind engine-tree"):
        StoreCopyProvider().create(_props(bucket, store.artifact_uri(LLM_KEY), "engine-file", DEST))


def test_store_object_is_copied_at_the_version_read(bucket):
    _client().put_object(Bucket=bucket, Key="indexes/knowledge-base.faiss", Body=b"index-v1")
    dest = "triton-repositories/0123456789abcdef0123/speech/retriever/1/knowledge-base.faiss"
    props = _props(bucket, f"s3://{bucket}/indexes/knowledge-base.faiss", "object", dest)
    created = StoreCopyProvider().create(props)
    assert _body(bucket, dest) == b"index-v1"
    version = _client().head_object(Bucket=bucket, Key="indexes/knowledge-base.faiss")["VersionId"]
    assert created.outs["source_identity"] == version

    missing = _props(bucket, f"s3://{bucket}/indexes/absent.faiss", "object", dest + ".x")
    with pytest.raises(StoreCopyError, match="does not exist; upload it to the model store"):
        StoreCopyProvider().create(missing)


def test_a_pinned_object_is_copied_only_when_its_bytes_match_the_source_lock(bucket):
    """Token tables come with the NeMo exports; the source lock pins their sha256 and the copy checks it."""
    table = "\u2581the 0\n\u2581hello 1\n<blk> 2\n".encode()
    _client().put_object(Bucket=bucket, Key="sources/asr/tokens.txt", Body=table)
    dest = "triton-repositories/0123456789abcdef0123/speech/asr/1/tokens.txt"
    pinned = hashlib.sha256(table).hexdigest()
    props = _props(bucket, f"s3://{bucket}/sources/asr/tokens.txt", "object", dest, sha256=pinned)
    assert check_inputs(props) == []
    created = StoreCopyProvider().create(props)
    assert _body(bucket, dest) == table and created.outs["source_identity"] == pinned

    # Someone re-exports and uploads a different table without re-pinning it: nothing is copied.
    _client().put_object(Bucket=bucket, Key="sources/asr/tokens.txt", Body=table + b"extra 3\n")
    other = dest.replace("0123456789abcdef0123", "fedcba98765432100123")
    with pytest.raises(
        StoreCopyError, match=rf"has sha256 [0-9a-f]{{64}}, but it is pinned to {pinned} .*source_lock record"
    ):
        StoreCopyProvider().create({**props, "destination": other})
    assert _keys(bucket, "triton-repositories/fedcba98765432100123/") == []

    problems = dict(check_inputs({**props, "sha256": "ABC"}))
    assert "not a lower-case hex sha256" in problems["sha256"]
    engine = _props(bucket, "s3://b/engine-store/engines/k/artifact/", "engine-file", "x/model.plan", sha256=pinned)
    assert "only kind 'object' takes a pin" in dict(check_inputs(engine))["sha256"]


def test_missing_or_damaged_engines_fail_clearly_and_leave_nothing(bucket, tmp_path):
    absent = f"s3://{bucket}/engine-store/engines/{'c' * 64}/artifact/"
    with pytest.raises(StoreCopyError, match="no engine at .* build the engine first"):
        StoreCopyProvider().create(_props(bucket, absent, "engine-file", DEST))

    files = {"a.safetensors": b"a" * 100, "b.safetensors": b"b" * 100}
    store = _publish(bucket, tmp_path, LLM_KEY, files, ".", "tensorrt_llm")
    _client().delete_object(Bucket=bucket, Key=f"engine-store/engines/{LLM_KEY}/artifact/b.safetensors")
    dest = "triton-repositories/v/llm/llm_chat/1/checkpoint/"
    with pytest.raises(StoreCopyError, match="b.safetensors is missing, its metadata records 100 bytes"):
        StoreCopyProvider().create(_props(bucket, store.artifact_uri(LLM_KEY), "engine-tree", dest))
    assert _keys(bucket, dest) == []


def test_a_copy_failing_midway_removes_what_it_copied(bucket, tmp_path):
    files = {f"part-{i}.bin": bytes([i]) * 64 for i in range(3)}
    store = _publish(bucket, tmp_path, LLM_KEY, files, ".", "tensorrt_llm")

    class FlakyClient:
        def __init__(self):
            self.inner, self.copies = _client(), 0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def copy(self, *args, **kwargs):
            self.copies += 1
            if self.copies == 2:
                raise ConnectionError("connection reset during copy")
            return self.inner.copy(*args, **kwargs)

    dest = "triton-repositories/v/llm/llm_chat/1/checkpoint/"
    with pytest.raises(ConnectionError):
        StoreCopyProvider(client_factory=FlakyClient).create(
            _props(bucket, store.artifact_uri(LLM_KEY), "engine-tree", dest)
        )
    assert _keys(bucket, dest) == []


def test_inputs_are_checked_and_the_provider_pickles_without_clients():
    problems = dict(check_inputs(_props("", "https://x/y", "mirror", "/abs/key")))
    assert set(problems) == {"kind", "bucket", "source", "destination"}
    tree = dict(check_inputs(_props("b", "s3://b/engine-store/engines/k/artifact/", "engine-tree", "no/slash")))
    assert "prefix ending in '/'" in tree["destination"]
    not_engine = dict(check_inputs(_props("b", "s3://b/some/file.bin", "engine-file", "x/model.plan")))
    assert "pass the Engine's `uri` output" in not_engine["source"]
    diff = StoreCopyProvider().diff(
        "id", _props("b", "s3://b/x", "object", "d"), _props("b", "s3://b/y", "object", "d")
    )
    assert diff.replaces == ["source"]

    blob = dill.dumps(StoreCopyProvider(), recurse=True)
    assert b"boto" not in blob and b"testing" not in blob and len(blob) < 20_000


def test_triton_loads_a_published_pool_repository_from_s3(s3_endpoint, bucket, tmp_path):
    """Engine store -> StoreCopy -> the pool's repository layout -> the real tritonserver reading it over
    the S3 API, with the Deployment's flags and region variable; then every model answers."""
    from infra.triton.deployment import triton_args
    from infra.triton.publication import pool_repository_uri, version_prefix
    from local import smoke as smoke_job
    from model_repo.local_server import TritonServer
    from platform_spec.serving import PoolServing
    from tests.triton.triton_fixtures import CONFIGS, FIXTURES, SET_BY_LOCAL_SERVER

    version, pool = "0123456789abcdef0123", "speech"
    root = version_prefix(version) + f"{pool}/"
    client = _client()
    client.put_object(Bucket=bucket, Key=version_prefix(version) + "repository.json", Body=b'{"target": "gpu"}')
    for name in ("vad_like", "llm_like"):
        client.put_object(Bucket=bucket, Key=f"{root}{name}/config.pbtxt", Body=CONFIGS[name].encode())
    client.put_object(Bucket=bucket, Key=f"{root}llm_like/1/model.py", Body=(FIXTURES / "smoke_model.py").read_bytes())
    # vad_like's version file arrives the way an engine plan does: from the engine store, by StoreCopy.
    code = (FIXTURES / "smoke_model.py").read_bytes()
    store = _publish(bucket, tmp_path, PLAN_KEY, {"model.py": code, "build.log": b"ok\n"}, "model.py", "tensorrt")
    StoreCopyProvider().create(
        _props(bucket, store.artifact_uri(PLAN_KEY), "engine-file", f"{root}vad_like/1/model.py")
    )

    uri = pool_repository_uri(bucket, version, pool, endpoint=s3_endpoint)
    serving = PoolServing(1, 1, 20, cpu="1", memory="1Gi", ephemeral_storage="1Gi")
    flags = [a for a in triton_args(uri, serving) if isinstance(a, str) and not a.startswith(SET_BY_LOCAL_SERVER)]

    class S3Triton(TritonServer):
        def _command(self, install, backends, endpoints):
            command = super()._command(install, backends, endpoints)
            return [f"--model-repository={uri}" if a.startswith("--model-repository=") else a for a in command]

    with S3Triton(tmp_path, extra_args=flags, env={"AWS_DEFAULT_REGION": "us-east-1"}, startup_timeout_s=120) as server:
        assert smoke_job.main(["--check", server.endpoints.grpc, "--wait", "10"]) == 0
        assert f"s3://{s3_endpoint}/{bucket}/{root.rstrip('/')}" in server.log_path.read_text()
