"""Why the Python models send only the outputs a request asked for (``_common/triton.send_outputs``), shown on the
real server: the Python backend of this Triton (2.51, r24.10) drops the others inside ``response_sender.send`` with
the GIL released, so their numpy arrays are freed without it and the stub's heap is corrupted -- it crashes later, in
whatever runs next (triton-inference-server/python_backend#390, fixed in 25.01, the production image's line). The
probe model makes that free run Python code, so the stub stops at once with Python's own diagnosis. When the local
Triton moves past the fix, the first test fails and says so."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from local.triton_calls import CallError, grpc_client, stream
from model_repo.local_server import TritonServer

pytestmark = pytest.mark.triton

PYTHON_MODELS = Path(__file__).resolve().parents[2] / "model_repo" / "python_models"
PROBE = Path(__file__).resolve().parent / "gil_probe" / "model.py"
CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 0
model_transaction_policy {{ decoupled: true }}
input [ {{ name: "X" data_type: TYPE_FP32 dims: [ 1 ] }} ]
output [ {{ name: "KEPT" data_type: TYPE_FP32 dims: [ 1 ] }}, {{ name: "DROPPED" data_type: TYPE_FP32 dims: [ 4 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
parameters {{ key: "send" value: {{ string_value: "{send}" }} }}
"""


@pytest.fixture(scope="module")
def probe_server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("gil-probe-repo")
    for send in ("all", "requested"):
        name = f"send_{send}"
        version = repo / name / "1"
        version.mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(CONFIG.format(name=name, send=send))
        shutil.copyfile(PROBE, version / "model.py")
        shutil.copytree(PYTHON_MODELS / "_common", version / "_common")
    with TritonServer(repo, work_dir=tmp_path_factory.mktemp("gil-probe-server")) as server:
        yield server


def _ask_for_kept(server: TritonServer, model: str):
    client = grpc_client(server.endpoints.grpc)
    try:
        return stream(client, model, {"X": np.zeros(1, dtype=np.float32)}, ["KEPT"], timeout_s=30)[0]
    finally:
        client.close()


def test_an_output_the_client_did_not_ask_for_is_freed_without_the_gil(probe_server):
    with pytest.raises(CallError, match="not healthy"):
        _ask_for_kept(probe_server, "send_all")
    log = probe_server.log_path.read_text()
    assert "must be called with the GIL held, but the GIL is released" in log, (
        "this Triton's Python backend drops unrequested outputs with the GIL held: python_backend#390's fix is in, "
        "and send_outputs' filtering is no longer needed for safety"
    )


def test_send_outputs_sends_what_was_asked_for_and_the_stub_lives(probe_server):
    responses = _ask_for_kept(probe_server, "send_requested")
    assert [sorted(r.outputs) for r in responses] == [["KEPT"], []] and responses[-1].final
    assert len(_ask_for_kept(probe_server, "send_requested")) == 2, "the same instance serves the next request"
