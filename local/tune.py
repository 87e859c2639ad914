"""``python -m local tune``: measure serving configurations per model and write the best as a catalog override.

For each model, every candidate (max batch size x max queue delay x instance count; instance count only
for models Triton does not batch) is loaded into one running Triton (explicit model control, config
override through the repository API, no restart) and swept over concurrency levels with the load
generator. A candidate's score is its highest throughput among levels whose p99 meets the model's
catalog objective (``latency_slo_p99_ms``) without errors; the best-scoring candidate is written to
``model_repo/overrides/<target>.yaml`` (the catalog's override file, :func:`model_repo.catalog.load_overrides`),
keeping the entries of models not tuned this time. A model no candidate serves within its objective
gets no entry, and the report says so. This is the job Triton Model Analyzer does, measured on the
configurations this catalog renders.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from local import bench, model_inputs, serving_configs
from local.loadgen import make_workload
from local.serving_configs import Candidate
from model_repo import catalog
from model_repo.catalog import CatalogError, ModelSpec
from model_repo.local_server import TritonServer
from model_repo.render import render_repository

TUNABLE_TARGETS = ("cpu",)  # the gpu target's engines (TensorRT) cannot run where this tool runs


class TuneError(ValueError):
    pass


@dataclass
class CandidateResult:
    candidate: Candidate
    config: dict[str, Any]
    sweep: dict[str, Any]
    score: float | None  # best throughput within the objective, None if no level met it


@dataclass
class ModelTuning:
    model: str
    slo_p99_ms: float
    results: list[CandidateResult] = field(default_factory=list)

    @property
    def chosen(self) -> CandidateResult | None:
        scored = [r for r in self.results if r.score is not None]
        # Highest throughput; ties go to fewer instances, then the shorter queue delay (less memory, latency).
        return max(
            scored,
            key=lambda r: (r.score, -r.candidate.instance_count, -r.candidate.max_queue_delay_us),
            default=None,
        )


def candidates(
    spec: ModelSpec, target: str, max_batches: Sequence[int], delays_us: Sequence[int], instances: Sequence[int]
) -> list[Candidate]:
    """The grid for ``spec``; models without Triton batching vary the instance count only."""
    if not instances or any(i < 1 for i in instances):
        raise TuneError(f"--instances {list(instances)}: give instance counts >= 1")
    if catalog.effective_batching(spec, target).max_batch_size == 0:
        return [Candidate(0, 0, n) for n in instances]
    if not max_batches or any(b < 1 for b in max_batches):
        raise TuneError(f"--max-batch {list(max_batches)}: give batch sizes >= 1")
    if not delays_us or any(d < 0 for d in delays_us):
        raise TuneError(f"--delay-us {list(delays_us)}: give queue delays >= 0 microseconds")
    return [Candidate(b, d, n) for b, d, n in itertools.product(max_batches, delays_us, instances)]


def tune(
    specs: Sequence[ModelSpec],
    models: Sequence[str],
    *,
    target: str = "cpu",
    max_batches: Sequence[int] = (4, 8, 16, 32),
    delays_us: Sequence[int] = (0, 500, 2000),
    instances: Sequence[int] = (1, 2),
    concurrencies: Sequence[int] = (1, 4, 16),
    window_s: float = 1.0,
    max_windows: int = 6,
    work_dir: Path,
    speech,
    out: Callable[[str], None] = print,
    show_progress: bool = True,
) -> list[ModelTuning]:
    """Measure every candidate of every model in ``models`` (selected from ``specs``) on a local Triton."""
    if target not in TUNABLE_TARGETS:
        raise TuneError(f"--target {target}: tuning runs the models it tunes; here only {list(TUNABLE_TARGETS)} can")
    by_name = {s.name: s for s in specs}
    unknown = [m for m in models if m not in by_name]
    if unknown:
        raise TuneError(f"models {unknown} are not enabled in this stack; enabled: {sorted(by_name)}")
    grids = {m: candidates(by_name[m], target, max_batches, delays_us, instances) for m in models}
    needed = _with_dependencies(by_name, models)
    rendered = render_repository(
        [s for s in specs if s.name in needed], target, Path(work_dir) / "repository", replace=True
    )
    server = TritonServer(
        rendered.out,
        model_control_mode="explicit",
        load_models=sorted(needed),
        work_dir=Path(work_dir) / "server",
        startup_timeout_s=600,
        exit_timeout_s=30,
    )
    server.start()
    tunings = []
    try:
        from local.triton_calls import grpc_client

        client = grpc_client(server.endpoints.grpc)
        try:
            for name in models:
                spec = by_name[name]
                tuning = ModelTuning(name, float(spec.latency_slo_p99_ms))
                for point in grids[name]:
                    config = serving_configs.candidate(spec, target, point)
                    serving_configs.load(client, name, config)
                    call = model_inputs.build_call(serving_configs.to_json(config), speech)
                    workload = make_workload(name, call.inputs, streaming=call.streaming, outputs=call.outputs)
                    result = bench.sweep(
                        server.endpoints.grpc,
                        workload,
                        concurrencies,
                        slo_p99_ms=tuning.slo_p99_ms,
                        window_s=window_s,
                        max_windows=max_windows,
                        stop_above_ms=2 * tuning.slo_p99_ms,
                        show_progress=show_progress,
                    )
                    best = result.best_within_slo()
                    score = None if best is None else best.summary.throughput
                    tuning.results.append(
                        CandidateResult(point, serving_configs.describe(config), result.to_dict(), score)
                    )
                    shown = "misses the objective" if score is None else f"{score:.1f} req/s within objective"
                    out(f"  {name:<12} {point.label():<34} {shown}")
                tunings.append(tuning)
        finally:
            client.close()
    finally:
        server.stop()
    return tunings


def _with_dependencies(by_name: dict[str, ModelSpec], models: Sequence[str]) -> set[str]:
    keep, todo = set(), list(models)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(by_name[name].depends_on)
    return keep


def override_entry(point: Candidate) -> dict[str, int]:
    if point.max_batch_size == 0:
        return {"instance_count": point.instance_count}
    return {
        "max_batch_size": point.max_batch_size,
        "max_queue_delay_us": point.max_queue_delay_us,
        "instance_count": point.instance_count,
    }


def write_overrides(
    tunings: Sequence[ModelTuning], target: str, directory: Path = catalog.OVERRIDES_DIR, note: str = ""
) -> Path | None:
    """Merge the chosen candidates into ``<directory>/<target>.yaml``; None when nothing was chosen.

    The merged document is validated with the catalog's own parser before it replaces the file, so a
    bad override is never written (and the previous file stays as it was).
    """
    chosen = {t.model: t.chosen for t in tunings if t.chosen is not None}
    if not chosen:
        return None
    path = Path(directory) / f"{target}.yaml"
    existing: dict[str, Any] = {}
    if path.is_file():
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TuneError(f"{path}: not valid YAML ({exc}); fix or delete it before tuning") from None
        catalog.parse_overrides(document, str(path))
        existing = dict(document.get("models") or {})
    for name, result in chosen.items():
        existing[name] = override_entry(result.candidate)
    document = {"models": {name: existing[name] for name in sorted(existing)}}
    try:
        catalog.parse_overrides(document, str(path))
    except CatalogError as exc:
        raise TuneError(f"the tuned overrides do not validate against the catalog: {exc}") from None
    header = [
        f"# Serving overrides for the {target} target, written by `python -m local tune`.",
        f"# Measured {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} on "
        f"{bench.host_facts().get('cpu_model', '?')} ({os.cpu_count()} CPUs).",
    ]
    for name, result in sorted(chosen.items()):
        header.append(f"# {name}: {result.candidate.label()} -> {result.score:.1f} req/s with p99 within objective")
    if note:
        header.append(f"# {note}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("\n".join(header) + "\n" + yaml.safe_dump(document, sort_keys=False))
    os.replace(tmp, path)
    return path


def report(tunings: Sequence[ModelTuning]) -> dict[str, Any]:
    return {
        "host": bench.host_facts(),
        "models": [
            {
                "model": t.model,
                "slo_p99_ms": t.slo_p99_ms,
                "chosen": None if t.chosen is None else override_entry(t.chosen.candidate),
                "chosen_score": None if t.chosen is None else t.chosen.score,
                "candidates": [
                    {"candidate": override_entry(r.candidate), "config": r.config, "score": r.score, "sweep": r.sweep}
                    for r in t.results
                ],
            }
            for t in tunings
        ],
    }
