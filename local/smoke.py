"""Smoke check of a Triton endpoint: the server is live and ready, every model is ready and answers correctly.

For each model (all models in the server's repository index, or the ones named) it checks readiness,
reads the model's config from the server, sends one meaningful request built from it
(:mod:`local.model_inputs`) -- streaming for decoupled models -- and checks the answer per role. Engines
that a public model calls through BLS (``engine_of`` parameter) are checked for readiness only; their
parent's inference exercises them. The exit status is what CI uses: 0 only if every check passed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from local import model_inputs, triton_calls


@dataclass(frozen=True)
class SmokeResult:
    model: str
    role: str
    ready: bool
    ok: bool
    latency_ms: float | None
    detail: str


def _server_problem(client) -> str | None:
    from tritonclient.utils import InferenceServerException

    try:
        if not client.is_server_live():
            return "server is not live (/v2/health/live)"
        if not client.is_server_ready():
            return "server is not ready (/v2/health/ready): a model failed to load, or loading is still going on"
    except InferenceServerException as exc:
        return f"server unreachable: {exc.message()}"
    return None


def check_endpoint(
    url: str,
    speech: np.ndarray,
    models: Sequence[str] = (),
    *,
    timeout_s: float = 120.0,
) -> tuple[str | None, list[SmokeResult]]:
    """Check the server at ``url`` (gRPC host:port); return (server problem or None, one result per model)."""
    from tritonclient.utils import InferenceServerException

    client = triton_calls.grpc_client(url)
    try:
        problem = _server_problem(client)
        if problem and "unreachable" in problem:
            return problem, []
        index = client.get_model_repository_index(as_json=True).get("models", [])
        listed = {m["name"] for m in index}
        names = list(models) or sorted(listed)
        results = []
        for name in names:
            results.append(_check_model(client, name, name in listed, speech, timeout_s, InferenceServerException))
        return problem, results
    finally:
        client.close()


def _check_model(client, name, listed, speech, timeout_s, server_error) -> SmokeResult:
    if not listed:
        return SmokeResult(name, "?", False, False, None, "not in the server's model repository")
    try:
        ready = client.is_model_ready(name)
    except server_error as exc:
        return SmokeResult(name, "?", False, False, None, f"readiness check failed: {exc.message()}")
    if not ready:
        return SmokeResult(name, "?", False, False, None, "model is not ready (see the server log for its load error)")
    config = client.get_model_config(name, as_json=True)["config"]
    role = model_inputs.role_of(config)
    if model_inputs.is_internal(config):
        parent = config["parameters"]["engine_of"]["string_value"]
        return SmokeResult(name, role, True, True, None, f"ready (engine of {parent}, exercised through it)")
    try:
        call = model_inputs.build_call(config, speech)
        started = time.monotonic()
        if call.streaming:
            streamed, _ = triton_calls.stream(client, name, call.inputs, call.outputs, timeout_s)
            responses = [r.outputs for r in streamed]
        else:
            outputs, _ = triton_calls.infer(client, name, call.inputs, call.outputs, timeout_s)
            responses = [outputs]
        latency = (time.monotonic() - started) * 1000
        detail = model_inputs.check_outputs(call, responses)
    except (triton_calls.CallError, AssertionError, ValueError) as exc:
        return SmokeResult(name, role, True, False, None, f"inference: {exc}")
    return SmokeResult(name, role, True, True, latency, detail)


def format_table(url: str, problem: str | None, results: Sequence[SmokeResult]) -> str:
    lines = [f"smoke {url}: {'server ok' if problem is None else problem}"]
    rows = [("model", "role", "ready", "result", "ms", "detail")]
    for r in results:
        ms = "" if r.latency_ms is None else f"{r.latency_ms:.1f}"
        rows.append((r.model, r.role, "yes" if r.ready else "NO", "ok" if r.ok else "FAIL", ms, r.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1])
    return "\n".join(lines)


def passed(problem: str | None, results: Sequence[SmokeResult]) -> bool:
    return problem is None and bool(results) and all(r.ok for r in results)


def as_json(url: str, problem: str | None, results: Sequence[SmokeResult]) -> dict:
    return {
        "url": url,
        "server_problem": problem,
        "passed": passed(problem, results),
        "models": [asdict(r) for r in results],
    }
