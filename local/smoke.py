"""The one smoke check of a Triton endpoint: the server is live and ready, every model is ready and answers correctly.

For each model (all models in the server's repository index, or the ones named) it checks readiness
(with the repository's load state and reason when not ready), reads the model's config from the
server, sends one meaningful request built from it (:mod:`local.model_inputs`) -- streaming for
decoupled models -- and checks the answer: every output against its declared dtype and rank, finite
numbers and the platform's tensor conventions (probabilities in [0, 1], unit embeddings, best-first
scores, non-empty audio, UTF-8 text), then per role (speech found in speech, audio of the input's
length out of the noise suppressor, ...). Engines that a public model calls through BLS
(``engine_of`` parameter) are checked for readiness only; their parent's inference exercises them.

Used by ``python -m local smoke`` (tables, JSON, stack outputs) and, as ``python3 -m local.smoke``, by
the post-deploy smoke Job in the serving image, which ships this module with ``local.model_inputs``
and ``local.triton_calls`` only (numpy and tritonclient[grpc]; no espeak-ng there, so the Job speaks
a synthetic voiced signal). Exit status: 0 when every model passed, 1 when any failed, 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from local import model_inputs, triton_calls

EMBEDDING_NORM_TOLERANCE = 1e-2


@dataclass(frozen=True)
class SmokeResult:
    model: str
    role: str
    ready: bool
    ok: bool
    latency_ms: float | None
    detail: str


@dataclass
class EndpointCheck:
    endpoint: str  # gRPC host:port
    models: list[str] = field(default_factory=list)  # empty: every model the server lists


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


def wait_ready(client, wait_s: float) -> str | None:
    """Poll until the server is live and ready or ``wait_s`` passed; the last problem, or None when ready."""
    deadline = time.monotonic() + wait_s
    while True:
        problem = _server_problem(client)
        if problem is None or time.monotonic() >= deadline:
            return problem
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))


def check_endpoint(
    url: str,
    speech: np.ndarray,
    models: Sequence[str] = (),
    *,
    timeout_s: float = 120.0,
    wait_s: float = 0.0,
    spoken: bool = True,
) -> tuple[str | None, list[SmokeResult]]:
    """Check the server at ``url`` (gRPC host:port); return (server problem or None, one result per model).

    ``wait_s``: how long to wait for the server to become ready first. ``spoken``: ``speech`` is real
    speech, so a voice activity detector must find some (False for a synthetic signal)."""
    from tritonclient.utils import InferenceServerException

    client = triton_calls.grpc_client(url)
    try:
        problem = wait_ready(client, wait_s)
        if problem and "unreachable" in problem:
            return f"{problem} (after waiting {wait_s:.0f}s)" if wait_s else problem, []
        index = {m["name"]: m for m in client.get_model_repository_index(as_json=True).get("models", [])}
        names = list(models) or sorted(index)
        results = [
            _check_model(client, name, index.get(name), speech, timeout_s, spoken, InferenceServerException)
            for name in names
        ]
        return problem, results
    finally:
        client.close()


def _not_ready_detail(entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "not in the server's model repository"
    state, reason = entry.get("state"), entry.get("reason")
    if not state:
        return "is not ready (in the repository, not loaded)"
    return f"is not ready (state {state}: {reason or 'no reason given'})"


def _check_model(client, name, entry, speech, timeout_s, spoken, server_error) -> SmokeResult:
    if entry is None:
        return SmokeResult(name, "?", False, False, None, _not_ready_detail(None))
    try:
        ready = client.is_model_ready(name)
    except server_error as exc:
        return SmokeResult(name, "?", False, False, None, f"readiness check failed: {exc.message()}")
    if not ready:
        return SmokeResult(name, "?", False, False, None, _not_ready_detail(entry))
    config = client.get_model_config(name, as_json=True)["config"]
    role = model_inputs.role_of(config)
    if model_inputs.is_internal(config):
        parent = config["parameters"]["engine_of"]["string_value"]
        return SmokeResult(name, role, True, True, None, f"ready (engine of {parent}, exercised through it)")
    try:
        call = model_inputs.build_call(config, speech, spoken=spoken)
        started = time.monotonic()
        if call.streaming:
            streamed, _ = triton_calls.stream(client, name, call.inputs, call.outputs, timeout_s)
            responses = [r.outputs for r in streamed]
        else:
            outputs, _ = triton_calls.infer(client, name, call.inputs, call.outputs, timeout_s)
            responses = [outputs]
        latency = (time.monotonic() - started) * 1000
        detail = model_inputs.check_outputs(call, responses)  # the role's own check names what is wrong first
        shapes = check_declared_outputs(config, responses, call.batched)
        if call.role == "unknown":
            detail = shapes
    except (triton_calls.CallError, AssertionError, ValueError) as exc:
        return SmokeResult(name, role, True, False, None, f"inference: {exc}")
    return SmokeResult(name, role, True, True, latency, detail)


def check_declared_outputs(config: Mapping[str, Any], responses: Sequence[Mapping[str, np.ndarray]],
                           batched: bool) -> str:  # fmt: skip
    """Every output that came back matches its declared dtype and rank, holds finite numbers and keeps the
    platform's conventions; returns a summary of what came back. Raises AssertionError naming the output."""
    specs = {o["name"]: o for o in config.get("output", [])}
    streamed = len(responses) > 1 or bool((config.get("model_transaction_policy") or {}).get("decoupled"))
    seen: dict[str, int] = {}
    shapes: dict[str, list[int]] = {}
    for outputs in responses:
        for name, value in outputs.items():
            if name in specs:
                _check_tensor(name, value, specs[name], batched and not streamed)
                seen[name] = seen.get(name, 0) + 1
                shapes[name] = list(value.shape)
    if not seen:
        raise AssertionError(f"none of the outputs {sorted(specs)} came back ({len(responses)} responses)")
    if streamed:
        return "stream: " + ", ".join(f"{name} x{n}" for name, n in sorted(seen.items()))
    return ", ".join(f"{name}{shape}" for name, shape in shapes.items())


def _check_tensor(name: str, value: np.ndarray, spec: Mapping[str, Any], batched: bool) -> None:
    dtype = spec["data_type"]
    dims = (spec.get("reshape") or {}).get("shape", spec.get("dims", []))
    rank = len(dims) + (1 if batched else 0)
    if value.ndim != rank:
        raise AssertionError(f"output {name} has rank {value.ndim} (shape {list(value.shape)}), config says {rank}")
    expected = model_inputs.numpy_dtype(dtype)
    if expected is np.object_:
        for item in value.reshape(-1):
            try:
                (item if isinstance(item, bytes) else bytes(item)).decode("utf-8")
            except UnicodeDecodeError:
                raise AssertionError(f"output {name} holds bytes that are not UTF-8 text") from None
        return
    if value.dtype != np.dtype(expected):
        raise AssertionError(f"output {name} has dtype {value.dtype}, config says {dtype}")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise AssertionError(f"output {name} holds NaN or infinite values")
    if name == "SPEECH_PROBS" and value.size and (value.min() < 0 or value.max() > 1):
        raise AssertionError(
            f"output {name} ranges [{value.min():.3g}, {value.max():.3g}], probabilities need [0, 1]"
        )
    if name == "EMBEDDING":
        norms = np.linalg.norm(value.reshape(-1, value.shape[-1]), axis=-1)
        if np.any(np.abs(norms - 1) > EMBEDDING_NORM_TOLERANCE):
            raise AssertionError(f"output {name} has L2 norms {norms.round(4).tolist()}, expected unit vectors")
    if name == "SCORES" and value.size > 1 and np.any(np.diff(value.reshape(-1)) > 1e-6):
        raise AssertionError(f"output {name} is not in descending order: {value.reshape(-1)[:8].tolist()}")
    if name == "AUDIO" and value.size == 0:
        raise AssertionError(f"output {name} is empty")


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


# --- the command the smoke Job runs ----------------------------------------------------------------------


def parse_target(text: str) -> EndpointCheck:
    endpoint, _, models = text.partition("=")
    if not endpoint or ":" not in endpoint:
        raise argparse.ArgumentTypeError(f"--check {text!r}: write HOST:PORT[=model,model,...]")
    return EndpointCheck(endpoint, [m for m in models.split(",") if m])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="append", type=parse_target, required=True, metavar="HOST:PORT[=m1,m2]",
                        help="a Triton gRPC endpoint and the models to check there (all listed ones if none)")
    parser.add_argument("--wait", type=float, default=600.0, help="seconds to wait for each server to be ready")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per model request")
    args = parser.parse_args(argv)
    speech = model_inputs.synthetic_voice()
    total, failures = 0, []
    for target in args.check:
        problem, results = check_endpoint(
            target.endpoint, speech, target.models, timeout_s=args.timeout, wait_s=args.wait, spoken=False
        )
        print(format_table(target.endpoint, problem, results), flush=True)
        if problem is not None:
            failures += [(target.endpoint, m, problem) for m in target.models or ["<server>"]]
            total += len(target.models) or 1
            continue
        total += len(results)
        failures += [(target.endpoint, r.model, r.detail) for r in results if not r.ok]
    print(f"{total - len(failures)}/{total} models passed", flush=True)
    for endpoint, model, detail in failures:
        print(f"smoke check failed: model {model} at {endpoint}: {detail}", file=sys.stderr)
    return 1 if failures or not total else 0


if __name__ == "__main__":
    sys.exit(main())
