"""Latency and throughput statistics of a load run, and the stability rule that ends a measurement.

A load level is measured in consecutive fixed-length *windows* (perf_analyzer's "measurement
intervals"). Each window yields a :class:`WindowStats`. A level is *stable* when the last
``STABLE_WINDOWS`` windows agree: each one's throughput and each one's latency (the average, or a
chosen percentile) lies within ``threshold`` (10 %) of the mean of those windows -- the rule
perf_analyzer applies with ``--stability-percentage 10`` over three measurements. The reported numbers
of a level are computed over the union of those last windows, never over warm-up windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

STABLE_WINDOWS = 3
DEFAULT_THRESHOLD = 0.10
LATENCY_METRICS = ("avg", "p50", "p90", "p95", "p99")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks (numpy's default).

    Raises ValueError on an empty sequence or a q outside [0, 100]: a percentile of nothing is not 0.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q={q} must be within [0, 100]")
    if not values:
        raise ValueError("percentile of an empty sequence is undefined")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Sample:
    """One finished request: when it finished (monotonic seconds), how long it took, whether it succeeded.

    ``first_response_s`` is the time to the first streamed response (decoupled models), else None.
    """

    end: float
    latency_s: float
    ok: bool
    first_response_s: float | None = None


@dataclass(frozen=True)
class WindowStats:
    """What one measurement window saw. Latencies in milliseconds, over successful requests only."""

    duration_s: float
    completed: int
    errors: int
    throughput: float  # successful requests per second
    avg_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    first_p50_ms: float | None = None
    first_p99_ms: float | None = None

    def latency(self, metric: str) -> float:
        if metric not in LATENCY_METRICS:
            raise ValueError(f"latency metric {metric!r}: use one of {list(LATENCY_METRICS)}")
        return getattr(self, f"{metric}_ms")

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(samples: Sequence[Sample], duration_s: float) -> WindowStats:
    """Statistics of the samples that finished within a window of ``duration_s`` seconds."""
    if duration_s <= 0:
        raise ValueError(f"window duration {duration_s} s must be positive")
    good = [s.latency_s * 1000.0 for s in samples if s.ok]
    errors = sum(1 for s in samples if not s.ok)
    firsts = [s.first_response_s * 1000.0 for s in samples if s.ok and s.first_response_s is not None]
    nan = float("nan")

    def pct(q: float) -> float:
        return percentile(good, q) if good else nan

    return WindowStats(
        duration_s=duration_s,
        completed=len(good),
        errors=errors,
        throughput=len(good) / duration_s,
        avg_ms=sum(good) / len(good) if good else nan,
        p50_ms=pct(50),
        p90_ms=pct(90),
        p95_ms=pct(95),
        p99_ms=pct(99),
        first_p50_ms=percentile(firsts, 50) if firsts else None,
        first_p99_ms=percentile(firsts, 99) if firsts else None,
    )


def within(values: Sequence[float], threshold: float) -> bool:
    """Every value within ``threshold`` (a fraction) of the mean of ``values``; False for NaN or a zero mean."""
    if not values or any(math.isnan(v) for v in values):
        return False
    mean = sum(values) / len(values)
    if mean <= 0:
        return False
    return all(abs(v / mean - 1.0) <= threshold for v in values)


def is_stable(
    windows: Sequence[WindowStats],
    threshold: float = DEFAULT_THRESHOLD,
    latency_metric: str = "avg",
    count: int = STABLE_WINDOWS,
) -> bool:
    """perf_analyzer's rule over the last ``count`` windows: throughput and latency each within ``threshold``.

    A window with no successful request is never stable (there is nothing to agree on).
    """
    if latency_metric not in LATENCY_METRICS:
        raise ValueError(f"latency metric {latency_metric!r}: use one of {list(LATENCY_METRICS)}")
    if not 0 < threshold < 1:
        raise ValueError(f"stability threshold {threshold} must be a fraction in (0, 1), e.g. 0.10 for 10 %")
    if len(windows) < count:
        return False
    last = windows[-count:]
    if any(w.completed == 0 for w in last):
        return False
    return within([w.throughput for w in last], threshold) and within(
        [w.latency(latency_metric) for w in last], threshold
    )


def window_of(sample: Sample, start: float, length: float) -> int:
    """Index of the window (of ``length`` seconds from ``start``) in which ``sample`` finished; -1 before start."""
    if sample.end < start:
        return -1
    return int((sample.end - start) // length)
