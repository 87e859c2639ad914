"""Closed-loop load generation against Triton's gRPC endpoint at a fixed concurrency.

``concurrency`` requests are always in flight (perf_analyzer's concurrency mode): each of that many
client loops sends the same request, waits for its answer and sends again. The loops run as asyncio
tasks on raw ``grpc.aio`` stubs (one prebuilt ``ModelInferRequest``, no per-call wrapping), spread
over ``processes`` spawned worker processes so the client is not the bottleneck on many-core hosts.
Decoupled (streaming) models are driven through ``ModelStreamInfer``, one stream per request, with
Triton's empty final response enabled, so a request's latency ends at its final response and the
time to its first response is recorded too.

A level is measured in windows of ``window_s`` seconds until the stability rule of
:mod:`local.stats` holds over the last three windows, or ``max_windows`` is reached (then the level
is reported unstable, never silently averaged in).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import queue as queue_module
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from local.stats import (
    DEFAULT_THRESHOLD,
    STABLE_WINDOWS,
    Sample,
    WindowStats,
    is_stable,
    summarize,
    window_of,
)

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
FLUSH_EVERY_S = 0.1
FINAL_FLAG = "triton_final_response"
EMPTY_FINAL = "triton_enable_empty_final_response"


class LoadError(RuntimeError):
    """The load run could not be carried out (server unreachable, every request failing, bad settings)."""


@dataclass(frozen=True)
class Workload:
    """One request, sent over and over: its model and serialized ``ModelInferRequest``."""

    model: str
    request: bytes
    streaming: bool
    batch: int = 1  # items per request (1 unless the request carries a batch dimension > 1)


def make_workload(
    model: str,
    inputs: Mapping[str, np.ndarray],
    *,
    streaming: bool = False,
    outputs: Sequence[str] = (),
    batch: int = 1,
) -> Workload:
    """Serialize one inference request for ``model`` from numpy inputs (strings as object arrays of bytes)."""
    from tritonclient.grpc import service_pb2
    from tritonclient.utils import np_to_triton_dtype, serialize_byte_tensor

    request = service_pb2.ModelInferRequest(model_name=model)
    for name, array in inputs.items():
        array = np.asarray(array)
        tensor = request.inputs.add()
        tensor.name = name
        tensor.shape.extend(array.shape)
        if array.dtype == np.object_ or array.dtype.type == np.bytes_:
            tensor.datatype = "BYTES"
            serialized = serialize_byte_tensor(array)
            request.raw_input_contents.append(serialized.item() if serialized.size else b"")
        else:
            tensor.datatype = np_to_triton_dtype(array.dtype)
            request.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
    for name in outputs:
        request.outputs.add().name = name
    if streaming:
        request.parameters[EMPTY_FINAL].bool_param = True
    return Workload(model, request.SerializeToString(), streaming, batch)


@dataclass
class LevelResult:
    """One concurrency level: every window measured and the summary over the last stable windows."""

    concurrency: int
    stable: bool
    windows: list[WindowStats]
    summary: WindowStats
    first_error: str | None = None
    measured_windows: int = field(init=False)

    def __post_init__(self) -> None:
        self.measured_windows = len(self.windows)

    def to_dict(self) -> dict:
        return {
            "concurrency": self.concurrency,
            "stable": self.stable,
            "measured_windows": self.measured_windows,
            "summary": self.summary.to_dict(),
            "windows": [w.to_dict() for w in self.windows],
            "first_error": self.first_error,
        }


# --- the worker process ---------------------------------------------------------------------------


def _worker_entry(url: str, workload: Workload, loops: int, out: mp.Queue, stop: mp.Event, timeout_s: float) -> None:
    try:
        asyncio.run(_worker(url, workload, loops, out, stop, timeout_s))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises LoadError
        with contextlib.suppress(Exception):
            out.put(("crashed", f"{type(exc).__name__}: {exc}"))


async def _worker(url: str, workload: Workload, loops: int, out: mp.Queue, stop: mp.Event, timeout_s: float) -> None:
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES), ("grpc.max_receive_message_length", -1)]
    async with grpc.aio.insecure_channel(url, options=options) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest.FromString(workload.request)
        buffer: list[tuple] = []
        running = True

        async def unary() -> tuple:
            started = time.monotonic()
            try:
                await stub.ModelInfer(request, timeout=timeout_s)
            except grpc.aio.AioRpcError as exc:
                return (
                    time.monotonic(),
                    time.monotonic() - started,
                    False,
                    None,
                    f"{exc.code().name}: {exc.details()}",
                )
            return (time.monotonic(), time.monotonic() - started, True, None, None)

        async def streamed() -> tuple:
            started = time.monotonic()
            first = None
            outcome = None
            call = stub.ModelStreamInfer(timeout=timeout_s)
            try:
                await call.write(request)
                await call.done_writing()
                # Read to the end of the stream (the server closes it after the final response): a call
                # dropped while still open would be cancelled, which a completed request must not be.
                async for response in call:
                    if first is None:
                        first = time.monotonic() - started
                    if response.error_message:
                        call.cancel()
                        return (time.monotonic(), time.monotonic() - started, False, first, response.error_message)
                    if outcome is None and response.infer_response.parameters[FINAL_FLAG].bool_param:
                        outcome = (time.monotonic(), time.monotonic() - started, True, first, None)
            except grpc.aio.AioRpcError as exc:
                failed = f"{exc.code().name}: {exc.details()}"
                return (time.monotonic(), time.monotonic() - started, False, first, failed)
            if outcome is None:
                return (
                    time.monotonic(),
                    time.monotonic() - started,
                    False,
                    first,
                    "stream ended without a final response",
                )
            return outcome

        one = streamed if workload.streaming else unary
        # Warm-up and reachability: one request before the clock starts.
        warm = await one()
        out.put(("ready", warm[4]))

        async def loop() -> None:
            while running:
                buffer.append(await one())

        async def watch() -> None:
            nonlocal running
            while running:
                await asyncio.sleep(FLUSH_EVERY_S)
                if buffer:
                    batch = buffer[:]
                    del buffer[: len(batch)]
                    out.put(("samples", batch))
                if stop.is_set():
                    running = False

        tasks = [asyncio.create_task(loop()) for _ in range(loops)]
        await watch()
        # Requests in flight at stop finish (bounded by the timeout) and are reported too.
        await asyncio.gather(*tasks, return_exceptions=True)
        if buffer:
            out.put(("samples", buffer[:]))
        out.put(("done", None))


# --- the parent: windows and the stability rule -----------------------------------------------------


def split_concurrency(concurrency: int, processes: int) -> list[int]:
    """Client loops per worker process: ``concurrency`` spread as evenly as possible, no empty worker."""
    if concurrency < 1:
        raise LoadError(f"concurrency {concurrency} must be >= 1")
    if processes < 1:
        raise LoadError(f"processes {processes} must be >= 1")
    workers = min(concurrency, processes)
    base, extra = divmod(concurrency, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


def measure_level(
    url: str,
    workload: Workload,
    concurrency: int,
    *,
    window_s: float = 2.0,
    threshold: float = DEFAULT_THRESHOLD,
    latency_metric: str = "avg",
    max_windows: int = 10,
    processes: int = 1,
    request_timeout_s: float = 60.0,
    start_timeout_s: float = 60.0,
    on_window: Callable[[int, WindowStats, bool], None] | None = None,
) -> LevelResult:
    """Hold ``concurrency`` requests in flight and measure windows until stable (or ``max_windows``)."""
    if window_s <= 0:
        raise LoadError(f"window length {window_s} s must be positive")
    if max_windows < STABLE_WINDOWS:
        raise LoadError(f"max_windows {max_windows} must be >= {STABLE_WINDOWS} (the stability rule needs them)")
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    split = split_concurrency(concurrency, processes)
    workers = [
        ctx.Process(target=_worker_entry, args=(url, workload, loops, out, stop, request_timeout_s), daemon=True)
        for loops in split
    ]
    for worker in workers:
        worker.start()
    per_window: dict[int, list[Sample]] = {}
    first_error: str | None = None
    windows: list[WindowStats] = []
    stable = False
    try:
        ready = 0
        deadline = time.monotonic() + start_timeout_s
        while ready < len(workers):
            kind, payload = _get(out, deadline, workers, "start")
            if kind == "crashed":
                raise LoadError(f"load worker failed before the first request: {payload}")
            if kind == "ready":
                ready += 1
                first_error = first_error or payload
        start = time.monotonic()
        for index in range(max_windows):
            window_end = start + (index + 1) * window_s
            # Collect until the window closed and every worker flushed what finished inside it.
            while True:
                remaining = window_end + 2 * FLUSH_EVERY_S + 0.05 - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    kind, payload = out.get(timeout=remaining)
                except queue_module.Empty:
                    break
                first_error = _collect(kind, payload, start, window_s, per_window, first_error)
            stats = summarize(per_window.get(index, []), window_s)
            windows.append(stats)
            stable = is_stable(windows, threshold, latency_metric)
            if on_window is not None:
                on_window(index, stats, stable)
            if stable:
                break
    finally:
        stop.set()
        _drain_and_join(out, workers, request_timeout_s)
    last = range(len(windows) - STABLE_WINDOWS, len(windows))
    merged = [s for i in last for s in per_window.get(i, [])]
    summary = summarize(merged, window_s * STABLE_WINDOWS)
    if summary.completed == 0:
        raise LoadError(
            f"no request to {workload.model!r} at {url} succeeded at concurrency {concurrency}: "
            f"{first_error or 'no answer within the windows'}"
        )
    return LevelResult(concurrency, stable, windows, summary, first_error)


def _collect(kind, payload, start, window_s, per_window, first_error):
    if kind == "samples":
        for end, latency, ok, first, error in payload:
            sample = Sample(end, latency, ok, first)
            index = window_of(sample, start, window_s)
            if index >= 0:
                per_window.setdefault(index, []).append(sample)
            if error and first_error is None:
                first_error = error
    elif kind == "crashed":
        raise LoadError(f"load worker failed: {payload}")
    return first_error


def _get(out: mp.Queue, deadline: float, workers: Sequence[mp.Process], what: str):
    while True:
        try:
            return out.get(timeout=max(0.05, min(0.5, deadline - time.monotonic())))
        except queue_module.Empty:
            dead = [w for w in workers if not w.is_alive() and w.exitcode not in (0, None)]
            if dead:
                raise LoadError(f"a load worker exited with code {dead[0].exitcode} during {what}") from None
            if time.monotonic() > deadline:
                raise LoadError(f"load workers did not {what} in time; is the server reachable?") from None


def _drain_and_join(out: mp.Queue, workers: Sequence[mp.Process], request_timeout_s: float) -> None:
    done = 0
    deadline = time.monotonic() + request_timeout_s + 5
    while done < len(workers) and time.monotonic() < deadline:
        try:
            kind, _ = out.get(timeout=0.5)
        except queue_module.Empty:
            if all(not w.is_alive() for w in workers):
                break
            continue
        if kind in ("done", "crashed"):
            done += 1
    for worker in workers:
        worker.join(timeout=5)
        if worker.is_alive():
            worker.terminate()
            worker.join(timeout=5)
