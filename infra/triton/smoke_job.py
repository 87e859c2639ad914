#!/usr/bin/env python3
"""Post-deploy smoke check: call every served model of every Triton endpoint once and fail loudly.

Runs as the smoke Job after each rollout (in the serving image, which ships tritonclient) and as a
local CLI against any endpoint::

    python infra/triton/smoke_job.py --check triton-speech.triton.svc:8001=vad,asr,tts \
                                     --check triton-llm.triton.svc:8001=llm_chat
    python infra/triton/smoke_job.py --check localhost:8001            # every model the server lists

For each model: it must be READY; its config (from the server) gives the inputs, which are filled
from the platform's tensor conventions (16 kHz mono float32 AUDIO with SAMPLE_RATE, UTF-8 TEXT,
MAX_TOKENS, TOP_K, an EMBEDDING); one request goes over gRPC (a stream for decoupled models) and the
answer must carry every declared output (decoupled: at least one response, then the final flag),
with the declared dtype and rank, finite numbers, and role sanity: speech probabilities in [0, 1],
unit-norm embeddings, retrieval scores in descending order, non-empty audio, UTF-8 text.
Exit status 0 when every model passed, 1 when any failed (each failure printed with the model, the
endpoint and what was wrong), 2 for bad arguments. Needs only numpy and tritonclient[grpc].
"""

from __future__ import annotations

import argparse
import queue
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
PROMPT = "Hello! What are your opening hours today?"
EMBEDDING_NORM_TOLERANCE = 1e-2
_NP_DTYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
    "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_, "STRING": np.object_,
}  # fmt: skip


class SmokeFailure(Exception):
    """One model failed its check; the message says what was wrong."""


@dataclass
class Result:
    endpoint: str
    model: str
    ok: bool
    seconds: float
    detail: str


@dataclass
class Target:
    endpoint: str
    models: list[str] = field(default_factory=list)  # empty: every model the server lists


def _dtype_name(config_dtype: str) -> str:
    return config_dtype.removeprefix("TYPE_")


def _speech(seconds: float = 1.0) -> np.ndarray:
    """A deterministic voiced signal (110 Hz with harmonics and a syllable envelope), float32 in [-1, 1]."""
    t = np.arange(int(seconds * SAMPLE_RATE), dtype=np.float64) / SAMPLE_RATE
    voice = sum(np.sin(2 * np.pi * 110 * k * t) / k for k in range(1, 8))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3 * t))
    signal = 0.3 * envelope * voice / np.max(np.abs(voice))
    return signal.astype(np.float32)


def _fill(name: str, dtype: str, dims: Sequence[int], parameters: dict[str, str]) -> np.ndarray | None:
    """Value for one input by the platform's conventions; None to leave an optional input out."""
    shape = [d if d > 0 else 1 for d in dims]
    if name == "SAMPLE_RATE":
        return np.full(shape, int(parameters.get("sample_rate", SAMPLE_RATE)), dtype=np.int32)
    if name == "AUDIO":
        return _speech().reshape(-1)
    if name in ("TEXT", "TEXT_INPUT"):
        return np.array([PROMPT.encode()], dtype=np.object_).reshape(shape)
    if name == "MAX_TOKENS":
        return np.full(shape, 8, dtype=np.int32)
    if name == "TEMPERATURE":
        return np.zeros(shape, dtype=np.float32)
    if name == "TOP_K":
        return np.full(shape, 3, dtype=np.int32)
    if name == "EMBEDDING":
        vector = np.ones(dims[-1] if dims and dims[-1] > 0 else 384, dtype=np.float32)
        return vector / np.linalg.norm(vector)
    return None


def build_inputs(config: dict[str, Any], grpc: Any) -> list[Any]:
    batched = int(config.get("max_batch_size", 0)) > 0
    parameters = {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}
    inputs = []
    for spec in config.get("input", []):
        name, dtype = spec["name"], _dtype_name(spec["data_type"])
        dims = [int(d) for d in spec.get("dims", [])]
        value = _fill(name, dtype, dims, parameters)
        if value is None:
            if spec.get("optional"):
                continue
            # An input no convention covers: zeros of the declared shape (dynamic dims -> 1).
            value = np.zeros([d if d > 0 else 1 for d in dims], dtype=_NP_DTYPES[dtype])
        value = value.astype(_NP_DTYPES[dtype]) if dtype not in ("BYTES", "STRING") else value
        if batched:
            value = value[np.newaxis, ...]
        tensor = grpc.InferInput(name, list(value.shape), "BYTES" if dtype == "STRING" else dtype)
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    return inputs


def check_output(model: str, name: str, value: np.ndarray, spec: dict[str, Any], batched: bool) -> None:
    """Raise SmokeFailure when one output tensor is wrong by dtype, rank, finiteness or role sanity."""
    dtype = _dtype_name(spec["data_type"])
    rank = len(spec.get("dims", [])) + (1 if batched else 0)
    if spec.get("reshape") is not None and "shape" in spec["reshape"]:
        rank = len(spec["reshape"]["shape"]) + (1 if batched else 0)
    if value.ndim != rank:
        raise SmokeFailure(f"output {name} has rank {value.ndim} (shape {list(value.shape)}), config says {rank}")
    if dtype in ("BYTES", "STRING"):
        for item in value.reshape(-1):
            try:
                (item if isinstance(item, bytes) else bytes(item)).decode("utf-8")
            except UnicodeDecodeError:
                raise SmokeFailure(f"output {name} holds bytes that are not UTF-8 text") from None
        return
    if value.dtype != np.dtype(_NP_DTYPES[dtype]):
        raise SmokeFailure(f"output {name} has dtype {value.dtype}, config says {dtype}")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise SmokeFailure(f"output {name} holds NaN or infinite values")
    if name == "SPEECH_PROBS" and value.size and (value.min() < 0 or value.max() > 1):
        raise SmokeFailure(f"output {name} ranges [{value.min():.3g}, {value.max():.3g}], probabilities need [0, 1]")
    if name == "EMBEDDING":
        norms = np.linalg.norm(value.reshape(-1, value.shape[-1]), axis=-1)
        if np.any(np.abs(norms - 1) > EMBEDDING_NORM_TOLERANCE):
            raise SmokeFailure(f"output {name} has L2 norms {norms.round(4).tolist()}, expected unit vectors")
    if name == "SCORES" and value.size > 1 and np.any(np.diff(value.reshape(-1)) > 1e-6):
        raise SmokeFailure(f"output {name} is not in descending order: {value.reshape(-1)[:8].tolist()}")
    if name == "AUDIO" and value.size == 0:
        raise SmokeFailure(f"output {name} is empty")


def _config_json(client: Any, model: str) -> dict[str, Any]:
    return client.get_model_config(model, as_json=True)["config"]


def _check_unary(client: Any, grpc: Any, model: str, config: dict[str, Any], timeout_s: float) -> str:
    outputs = config.get("output", [])
    result = client.infer(
        model,
        build_inputs(config, grpc),
        outputs=[grpc.InferRequestedOutput(o["name"]) for o in outputs],
        client_timeout=timeout_s,
    )
    batched = int(config.get("max_batch_size", 0)) > 0
    shapes = []
    for spec in outputs:
        value = result.as_numpy(spec["name"])
        if value is None:
            raise SmokeFailure(f"the answer has no output {spec['name']}")
        check_output(model, spec["name"], value, spec, batched)
        shapes.append(f"{spec['name']}{list(value.shape)}")
    return ", ".join(shapes)


def _check_stream(client: Any, grpc: Any, model: str, config: dict[str, Any], timeout_s: float) -> str:
    responses: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    try:
        client.async_stream_infer(model, build_inputs(config, grpc), enable_empty_final_response=True)
        deadline = time.monotonic() + timeout_s
        specs = {o["name"]: o for o in config.get("output", [])}
        seen: dict[str, int] = {}
        count = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SmokeFailure(f"no final response within {timeout_s:.0f}s ({count} responses so far)")
            try:
                result, error = responses.get(timeout=remaining)
            except queue.Empty:
                continue
            if error is not None:
                raise SmokeFailure(f"the stream answered with an error: {error}")
            response = result.get_response()
            for tensor in response.outputs:
                value = result.as_numpy(tensor.name)
                if value is not None and tensor.name in specs:
                    check_output(model, tensor.name, value, specs[tensor.name], batched=False)
                    seen[tensor.name] = seen.get(tensor.name, 0) + 1
            count += 1
            final = response.parameters.get("triton_final_response")
            if final is not None and final.bool_param:
                break
        if not seen:
            raise SmokeFailure(f"the stream ended after {count} responses without any output")
        return ", ".join(f"{name} x{n}" for name, n in sorted(seen.items()))
    finally:
        client.stop_stream()


def check_model(client: Any, grpc: Any, model: str, timeout_s: float) -> str:
    """Check one model; return a one-line summary or raise SmokeFailure."""
    if not client.is_model_ready(model):
        reason = ""
        for entry in client.get_model_repository_index(as_json=True).get("models", []):
            if entry.get("name") == model:
                state, why = entry.get("state"), entry.get("reason")
                reason = (
                    f" (state {state}: {why or 'no reason given'})" if state else " (in the repository, not loaded)"
                )
        raise SmokeFailure(f"is not ready{reason or ' (the server does not list it)'}")
    config = _config_json(client, model)
    decoupled = bool((config.get("model_transaction_policy") or {}).get("decoupled"))
    if decoupled:
        return "stream: " + _check_stream(client, grpc, model, config, timeout_s)
    return _check_unary(client, grpc, model, config, timeout_s)


def wait_ready(client: Any, endpoint: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            if client.is_server_live() and client.is_server_ready():
                return
            last = "live but not ready"
        except Exception as exc:  # the server may still be starting: keep trying until the deadline
            last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        time.sleep(2)
    raise SmokeFailure(f"server at {endpoint} not ready after {wait_s:.0f}s ({last})")


def run(targets: Sequence[Target], *, wait_s: float, timeout_s: float,
        out: Callable[[str], None] = print) -> list[Result]:  # fmt: skip
    import tritonclient.grpc as grpc

    results: list[Result] = []
    for target in targets:
        client = grpc.InferenceServerClient(target.endpoint)
        try:
            try:
                wait_ready(client, target.endpoint, wait_s)
            except SmokeFailure as exc:
                for model in target.models or ["<server>"]:
                    results.append(Result(target.endpoint, model, False, 0.0, str(exc)))
                continue
            models = target.models or sorted(
                m["name"] for m in client.get_model_repository_index(as_json=True).get("models", [])
            )
            for model in models:
                start = time.monotonic()
                try:
                    detail, ok = check_model(client, grpc, model, timeout_s), True
                except SmokeFailure as exc:
                    detail, ok = str(exc), False
                except Exception as exc:  # a server-side error answer is a failed check, with its text
                    detail, ok = f"answered with an error: {str(exc).strip()}", False
                results.append(Result(target.endpoint, model, ok, time.monotonic() - start, detail))
                out(f"{'ok  ' if ok else 'FAIL'} {target.endpoint} {model} ({results[-1].seconds * 1000:.0f} ms): "
                    f"{detail}")  # fmt: skip
        finally:
            client.close()
    return results


def parse_target(text: str) -> Target:
    endpoint, _, models = text.partition("=")
    if not endpoint or ":" not in endpoint:
        raise argparse.ArgumentTypeError(f"--check {text!r}: write HOST:PORT[=model,model,...]")
    names = [m for m in models.split(",") if m] if models else []
    return Target(endpoint, names)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="append", type=parse_target, required=True, metavar="HOST:PORT[=m1,m2]",
                        help="a Triton gRPC endpoint and the models to check there (all listed ones if none)")
    parser.add_argument("--wait", type=float, default=600.0, help="seconds to wait for each server to be ready")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per model request")
    args = parser.parse_args(argv)
    results = run(args.check, wait_s=args.wait, timeout_s=args.timeout)
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)}/{len(results)} models passed")
    for r in failed:
        print(f"smoke check failed: model {r.model} at {r.endpoint}: {r.detail}", file=sys.stderr)
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
