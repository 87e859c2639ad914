"""Two places where the Python backend of this Triton (2.51, r24.10) frees a response's numpy arrays on a thread that
does not hold the GIL, shown on the real server, and how the models avoid each. Freed without the GIL, an array
corrupts the stub's heap and the stub dies later, in whatever runs next -- the voice pipeline's stub died so, at
random, on the GPU machine. The probes make the free run Python code, so the stub stops at once instead.

1. ``response_sender.send`` drops the outputs the client did not ask for with the GIL released
   (triton-inference-server/python_backend#390, fixed in 25.01): the models send only what was asked for
   (``_common/triton.send_outputs``).
2. A decoupled BLS stream's responses stay in a map that the stub's cleanup thread empties after the stream ends; when
   it holds the last reference, ``~ResponseIterator`` frees them there (``Stub::SendCleanupId``): the voice pipeline
   streams its decoupled stages over gRPC instead (``_common/bls.py`` has the whole story).

When the local Triton moves past the first fix, its test fails and says so.
"""

from __future__ import annotations

import numpy as np
import pytest

from local.triton_calls import CallError, grpc_client, stream
from model_repo.local_server import TritonServer
from tests.model_repo import python_backend_probes as probes_models

pytestmark = pytest.mark.triton

ROUNDS = 10
# A BLS round's arrays were freed on the cleanup thread in about 1 round of 3 here (the probe makes it likely, not
# certain): the test streams up to BLS_CALLS x BLS_ROUNDS rounds and stops at the stub's death.
BLS_ROUNDS, BLS_CALLS = 30, 8


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    repo = tmp_path_factory.mktemp("probe-repo")
    for send in ("all", "requested"):
        probes_models.add(repo, f"send_{send}", "drops_outputs.py", inputs=("X",), decoupled=True, send=send,
                          outputs={"KEPT": ("TYPE_FP32", 1), "DROPPED": ("TYPE_FP32", 4)})  # fmt: skip
    probes_models.add(repo, "stream_source", "stream_source.py", inputs=("N",), decoupled=True,
                      outputs={"OUT": ("TYPE_FP32", 4)})  # fmt: skip
    for via in ("bls", "grpc"):
        probes_models.add(repo, f"stream_via_{via}", "stream_caller.py", inputs=("ROUNDS",), via=via,
                          outputs={"FREED": ("TYPE_INT32", 1)})  # fmt: skip
    with TritonServer(repo, work_dir=tmp_path_factory.mktemp("probe-server")) as server:
        yield server


def _ask_for_kept(server: TritonServer, model: str):
    client = grpc_client(server.endpoints.grpc)
    try:
        return stream(client, model, {"X": np.zeros(1, dtype=np.int32)}, ["KEPT"], timeout_s=30)[0]
    finally:
        client.close()


def _freed_after_streams(server: TritonServer, model: str, rounds: int = ROUNDS) -> int:
    import tritonclient.grpc as grpcclient

    client = grpc_client(server.endpoints.grpc)
    try:
        count = grpcclient.InferInput("ROUNDS", [1], "INT32")
        count.set_data_from_numpy(np.array([rounds], dtype=np.int32))
        return int(client.infer(model, [count], client_timeout=120).as_numpy("FREED")[0])
    finally:
        client.close()


def test_an_output_the_client_did_not_ask_for_is_freed_without_the_gil(probes):
    with pytest.raises(CallError, match="not healthy"):
        _ask_for_kept(probes, "send_all")
    assert "must be called with the GIL held, but the GIL is released" in probes.log_path.read_text(), (
        "this Triton's Python backend drops unrequested outputs with the GIL held: python_backend#390's fix is in, "
        "and send_outputs' filtering is no longer needed for safety"
    )


def test_send_outputs_sends_what_was_asked_for_and_the_stub_lives(probes):
    responses = _ask_for_kept(probes, "send_requested")
    assert [sorted(r.outputs) for r in responses] == [["KEPT"], []] and responses[-1].final
    assert len(_ask_for_kept(probes, "send_requested")) == 2, "the same instance serves the next request"


def test_a_decoupled_bls_stream_frees_its_responses_without_the_gil(probes):
    with pytest.raises(Exception, match="not healthy"):
        for _ in range(BLS_CALLS):
            _freed_after_streams(probes, "stream_via_bls", BLS_ROUNDS)


def test_the_same_streams_over_grpc_free_every_array_with_the_gil(probes):
    assert _freed_after_streams(probes, "stream_via_grpc") == 3 * ROUNDS
    assert _freed_after_streams(probes, "stream_via_grpc") == 2 * 3 * ROUNDS, "the same instance serves on"
