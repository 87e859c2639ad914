"""Concurrency sweep of one model: throughput and latency percentiles per level, JSON and a PNG plot.

Each level runs :func:`local.loadgen.measure_level` (stability rule: three windows within 10 %). The
result names the best level whose p99 meets the model's latency objective (the catalog's
``latency_slo_p99_ms``, or ``--slo-ms``) -- the number the serving benchmark compares configurations by.
The JSON carries the host's CPU count and load average at start and end: on a shared machine those
say how far the numbers can be trusted.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.loadgen import LevelResult, Workload, measure_level
from local.stats import DEFAULT_THRESHOLD


@dataclass
class Sweep:
    model: str
    url: str
    slo_p99_ms: float | None
    levels: list[LevelResult]
    settings: dict[str, Any]
    host_before: dict[str, Any]
    host_after: dict[str, Any]

    def best_within_slo(self) -> LevelResult | None:
        return best_within_slo(self.levels, self.slo_p99_ms)

    def peak(self) -> LevelResult:
        return max(self.levels, key=lambda r: r.summary.throughput)

    def to_dict(self) -> dict[str, Any]:
        best = self.best_within_slo()
        peak = self.peak()
        return {
            "model": self.model,
            "url": self.url,
            "slo_p99_ms": self.slo_p99_ms,
            "settings": self.settings,
            "host": {"before": self.host_before, "after": self.host_after},
            "levels": [level.to_dict() for level in self.levels],
            "best_within_slo": None if best is None else _headline(best),
            "peak": _headline(peak),
        }


def _headline(level: LevelResult) -> dict[str, Any]:
    s = level.summary
    return {
        "concurrency": level.concurrency,
        "throughput": s.throughput,
        "p50_ms": s.p50_ms,
        "p95_ms": s.p95_ms,
        "p99_ms": s.p99_ms,
        "stable": level.stable,
    }


def best_within_slo(levels: Sequence[LevelResult], slo_p99_ms: float | None) -> LevelResult | None:
    """The level with the highest throughput whose p99 meets the objective and which saw no error."""
    eligible = [r for r in levels if r.summary.errors == 0 and (slo_p99_ms is None or r.summary.p99_ms <= slo_p99_ms)]
    return max(eligible, key=lambda r: r.summary.throughput, default=None)


def host_facts() -> dict[str, Any]:
    """What else the machine is doing, recorded beside every measurement."""
    load1, load5, load15 = os.getloadavg()
    facts = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "python": platform.python_version(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return facts


def sweep(
    url: str,
    workload: Workload,
    concurrencies: Sequence[int],
    *,
    slo_p99_ms: float | None,
    window_s: float = 2.0,
    max_windows: int = 10,
    threshold: float = DEFAULT_THRESHOLD,
    latency_metric: str = "avg",
    processes: int = 1,
    stop_above_ms: float | None = None,
    show_progress: bool = True,
) -> Sweep:
    """Measure every concurrency level in order. With ``stop_above_ms``, the sweep ends after the first level
    whose p99 exceeds it (past saturation, more concurrency only queues more)."""
    if not concurrencies or any(c < 1 for c in concurrencies):
        raise ValueError(f"concurrency levels {list(concurrencies)} must be positive integers")
    settings = {
        "concurrency": list(concurrencies),
        "window_s": window_s,
        "max_windows": max_windows,
        "stability_threshold": threshold,
        "stability_latency_metric": latency_metric,
        "client_processes": processes,
        "streaming": workload.streaming,
    }
    before = host_facts()
    levels: list[LevelResult] = []
    bar = _progress_bar(len(concurrencies) * max_windows, workload.model) if show_progress else None
    try:
        for concurrency in concurrencies:
            done = 0

            def on_window(index, stats, stable, c=concurrency):
                nonlocal done
                done += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(
                        f"c={c} w{index + 1} {stats.throughput:.0f}/s p99 {stats.p99_ms:.1f}ms"
                        + (" stable" if stable else "")
                    )

            level = measure_level(
                url,
                workload,
                concurrency,
                window_s=window_s,
                threshold=threshold,
                latency_metric=latency_metric,
                max_windows=max_windows,
                processes=processes,
                on_window=on_window,
            )
            if bar is not None:
                bar.update(max_windows - done)  # a level that stabilized early skips its remaining windows
            levels.append(level)
            if stop_above_ms is not None and level.summary.p99_ms > stop_above_ms:
                break
    finally:
        if bar is not None:
            bar.close()
    return Sweep(workload.model, url, slo_p99_ms, levels, settings, before, host_facts())


def _progress_bar(total: int, model: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"bench {model}", unit="window", leave=False)


def format_table(result: Sweep) -> str:
    rows = [("conc", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "windows", "stable")]
    for level in result.levels:
        s = level.summary
        rows.append(
            (
                str(level.concurrency),
                f"{s.throughput:.1f}",
                f"{s.p50_ms:.2f}",
                f"{s.p95_ms:.2f}",
                f"{s.p99_ms:.2f}",
                str(s.errors),
                str(level.measured_windows),
                "yes" if level.stable else "NO",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"{result.model} @ {result.url} (p99 objective {result.slo_p99_ms} ms)"]
    lines += ["  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    best = result.best_within_slo()
    lines.append(
        "  best within objective: "
        + ("none" if best is None else f"{best.summary.throughput:.1f} req/s at concurrency {best.concurrency}")
    )
    return "\n".join(lines)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def plot(sweeps: dict[str, Sweep], path: Path, title: str) -> None:
    """Throughput and p50/p99 latency against concurrency, one line per labelled sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_l) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, result in sweeps.items():
        xs = [level.concurrency for level in result.levels]
        ax_t.plot(xs, [level.summary.throughput for level in result.levels], marker="o", label=label)
        ax_l.plot(xs, [level.summary.p50_ms for level in result.levels], marker="o", label=f"{label} p50")
        ax_l.plot(
            xs, [level.summary.p99_ms for level in result.levels], marker="x", linestyle="--", label=f"{label} p99"
        )
        if result.slo_p99_ms is not None:
            ax_l.axhline(result.slo_p99_ms, color="grey", linewidth=0.8, linestyle=":")
    for ax in (ax_t, ax_l):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent requests")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    ax_t.set_ylabel("requests / s")
    ax_l.set_ylabel("latency (ms)")
    ax_l.set_yscale("log")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
