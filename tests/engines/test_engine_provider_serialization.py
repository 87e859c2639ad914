"""The provider pickles the way Pulumi pickles it (dill, sorted dicts, recurse) and carries nothing secret."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import dill
from pulumi.dynamic import Config, ConfigureRequest
from pulumi.dynamic.dynamic import serialize_provider

from engines.provider import EngineProvider
from tests.engines.conftest import cpu_spec
from tests.engines.test_engine_provider_lifecycle import engine_inputs

REPO = Path(__file__).resolve().parents[2]
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY-do-not-leak"


def _configured_provider() -> EngineProvider:
    provider = EngineProvider()
    config = Config(
        {
            "engines:s3EndpointUrl": "http://127.0.0.1:9",
            "engines:awsProfile": SECRET,
            "engines:kubeconfig": f"users: [{{user: {{token: {SECRET}}}}}]",
        },
        "triton-platform",
    )
    provider.configure(ConfigureRequest(config))
    assert provider._configured["aws_profile"] == SECRET
    return provider


def test_round_trip_through_pulumis_serializer_keeps_no_configuration(monkeypatch, mlp_onnx, store_dir):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    provider = _configured_provider()
    # Use it first, so any client it might have cached would be in the pickle.
    provider.create(provider.check({}, engine_inputs(cpu_spec(mlp_onnx), store_dir.as_uri())).inputs)

    serialized = serialize_provider(provider)
    raw = base64.b64decode(serialized)
    assert SECRET.encode() not in raw
    for marker in (b"boto", b"botocore", b"kubernetes", b"127.0.0.1"):
        assert marker not in raw, marker
    assert len(raw) < 2000  # a class reference and an empty state, nothing else

    restored = dill.loads(raw)
    assert isinstance(restored, EngineProvider) and restored._configured == {}
    # Pulumi serializes identically every time, so the __provider input never shows as a change.
    assert serialize_provider(EngineProvider()) == serialize_provider(restored)


def test_a_fresh_process_deserializes_and_uses_it(mlp_onnx, store_dir):
    """What the dynamic provider process does: unpickle from the project directory, then call check."""
    serialized = serialize_provider(EngineProvider())
    props = engine_inputs(cpu_spec(mlp_onnx), store_dir.as_uri())
    script = (
        "import base64, dill, json, sys\n"
        "p = dill.loads(base64.b64decode(sys.argv[1]))\n"
        "r = p.check({}, json.loads(sys.argv[2]))\n"
        "print(json.dumps({'failures': [f.reason for f in r.failures], 'key': r.inputs['key']}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, serialized, json.dumps(props)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"failures": [], "key": props["key"]}
