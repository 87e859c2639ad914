"""Command line of the local platform and the client tools.

    python -m local up --stack dev [--keep-running]
    python -m local smoke --url 127.0.0.1:8001 | --stack-outputs outputs.json | --stack prod | --local dev
    python -m local bench --model embed --local dev --only embed --concurrency 1,2,4,8
    python -m local tune --stack dev --models vad,embed

Exit codes: 0 ok; 1 a check failed or a server did not start; 2 bad input (arguments, stack, outputs).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated integers, e.g. 1,2,4,8") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one value")
    return values


def _names(text: str) -> list[str]:
    return [n for n in text.split(",") if n]


# --- up ---------------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from local.platform_run import up

    up(
        args.stack,
        work_dir=Path(args.work_dir),
        store=Path(args.store),
        only=args.only,
        keep_running=args.keep_running,
        max_tokens=args.max_tokens,
    )
    return 0


# --- smoke ------------------------------------------------------------------------------------------


def cmd_smoke(args: argparse.Namespace) -> int:
    from local import smoke, targets
    from local.speech_sample import speak

    speech = speak()
    documents, ok = [], True
    with targets.resolve(args) as endpoints:
        for target in endpoints:
            models = args.models or list(target.models)
            problem, results = smoke.check_endpoint(target.grpc, speech, models, timeout_s=args.timeout)
            print(smoke.format_table(f"{target.name} {target.grpc}", problem, results), flush=True)
            ok = ok and smoke.passed(problem, results)
            documents.append({"target": target.name, **smoke.as_json(target.grpc, problem, results)})
    if args.json:
        Path(args.json).write_text(json.dumps({"passed": ok, "endpoints": documents}, indent=2) + "\n")
    print("smoke: PASSED" if ok else "smoke: FAILED", flush=True)
    return 0 if ok else 1


# --- bench ------------------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    from local import bench, model_inputs, targets
    from local.loadgen import make_workload
    from local.speech_sample import speak
    from local.triton_calls import grpc_client
    from model_repo import catalog

    speech = speak()
    with targets.resolve(args) as endpoints:
        if len(endpoints) != 1:
            names = [t.name for t in endpoints]
            raise SystemExit(_usage_error(f"the stack has pools {names}; pick one with --pool"))
        target = endpoints[0]
        client = grpc_client(target.grpc)
        try:
            config = client.get_model_config(args.model, as_json=True)["config"]
        finally:
            client.close()
        call = model_inputs.build_call(config, speech)
        slo = args.slo_ms
        if slo is None and args.model in catalog.CATALOG:
            slo = float(catalog.CATALOG[args.model].latency_slo_p99_ms)
        workload = make_workload(args.model, call.inputs, streaming=call.streaming, outputs=call.outputs)
        result = bench.sweep(
            target.grpc,
            workload,
            args.concurrency,
            slo_p99_ms=slo,
            window_s=args.window,
            max_windows=args.max_windows,
            threshold=args.threshold,
            latency_metric=args.latency_metric,
            processes=args.processes,
            stop_above_ms=None if args.full_sweep or slo is None else 2 * slo,
        )
    print(bench.format_table(result))
    document = {"tool": "python -m local bench", "command": sys.argv, **result.to_dict()}
    out = Path(args.out or f"bench/results/bench_{args.model}.json")
    bench.write_json(out, document)
    png = out.with_suffix(".png")
    bench.plot({args.model: result}, png, f"{args.model} @ {target.name} ({target.grpc})")
    print(f"wrote {out} and {png}")
    return 0


# --- tune -------------------------------------------------------------------------------------------


def cmd_tune(args: argparse.Namespace) -> int:
    from local import bench, tune
    from local.platform_run import DEFAULT_WORK_DIR, stack_models
    from local.speech_sample import speak

    specs = stack_models(args.stack, overrides_dir=Path(args.overrides_dir))
    tunings = tune.tune(
        specs,
        args.models,
        target=args.target,
        max_batches=args.max_batch,
        delays_us=args.delay_us,
        instances=args.instances,
        concurrencies=args.concurrency,
        window_s=args.window,
        max_windows=args.max_windows,
        work_dir=Path(args.work_dir or DEFAULT_WORK_DIR.parent / "tune"),
        speech=speak(),
    )
    for t in tunings:
        chosen = t.chosen
        shown = (
            "no candidate met the objective"
            if chosen is None
            else f"{chosen.candidate.label()} ({chosen.score:.1f} req/s)"
        )
        print(f"{t.model}: p99 objective {t.slo_p99_ms:.0f} ms -> {shown}")
    if args.report:
        bench.write_json(Path(args.report), tune.report(tunings))
    if args.dry_run:
        print("dry run: overrides not written")
        return 0
    path = tune.write_overrides(tunings, args.target, Path(args.overrides_dir))
    print(f"wrote {path}" if path else "nothing written: no model had a candidate within its objective")
    return 0


# --- parser -----------------------------------------------------------------------------------------


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    from local.platform_run import DEFAULT_STORE, DEFAULT_WORK_DIR
    from local.stats import DEFAULT_THRESHOLD, LATENCY_METRICS
    from model_repo import catalog

    parser = argparse.ArgumentParser(prog="python -m local", description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="the platform on this machine: render, build engines, serve, monitor, one turn")
    up.add_argument("--stack", required=True, help="stack whose model selection to serve (Pulumi.<stack>.yaml)")
    up.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR), help="repository, server log and up.json go here")
    up.add_argument("--store", default=str(DEFAULT_STORE), help="local engine store (content-addressed)")
    up.add_argument("--only", type=_names, default=[], help="serve only these models (and what they call)")
    up.add_argument("--keep-running", action="store_true", help="keep serving until Ctrl-C / SIGTERM")
    up.add_argument("--max-tokens", type=int, default=48, help="LLM tokens of the voice turn's answer (at most)")
    up.set_defaults(func=cmd_up)

    from local import targets

    smoke = sub.add_parser("smoke", help="every model ready and answering correctly (exit status for CI)")
    targets.add_arguments(smoke)
    smoke.add_argument("--models", type=_names, default=[], help="check only these models")
    smoke.add_argument("--timeout", type=float, default=120.0, help="seconds per inference")
    smoke.add_argument("--json", help="also write the results as JSON here")
    smoke.set_defaults(func=cmd_smoke)

    bench = sub.add_parser("bench", help="concurrency sweep of one model: throughput, p50/p95/p99, JSON + PNG")
    targets.add_arguments(bench)
    bench.add_argument("--model", required=True)
    bench.add_argument("--concurrency", type=_ints, default=[1, 2, 4, 8, 16])
    bench.add_argument("--window", type=float, default=2.0, help="measurement window, seconds")
    bench.add_argument("--max-windows", type=int, default=10, help="give up on stability after this many windows")
    bench.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="stability: fraction, 0.10 = 10%%")
    bench.add_argument("--latency-metric", choices=LATENCY_METRICS, default="avg", help="latency the rule checks")
    bench.add_argument("--processes", type=int, default=1, help="client worker processes")
    bench.add_argument("--slo-ms", type=float, default=None, help="p99 objective (default: the catalog's)")
    bench.add_argument("--full-sweep", action="store_true", help="measure every level even past 2x the objective")
    bench.add_argument("--out", help="JSON path (default bench/results/bench_<model>.json); the PNG goes beside it")
    bench.set_defaults(func=cmd_bench)

    tune = sub.add_parser("tune", help="measure batching/instance configurations, write the catalog override")
    tune.add_argument("--stack", required=True)
    tune.add_argument("--models", type=_names, required=True, help="models to tune, comma-separated")
    tune.add_argument("--target", default="cpu", choices=catalog.TARGETS)
    tune.add_argument("--max-batch", type=_ints, default=[4, 8, 16, 32])
    tune.add_argument("--delay-us", type=_ints, default=[0, 500, 2000])
    tune.add_argument("--instances", type=_ints, default=[1, 2])
    tune.add_argument("--concurrency", type=_ints, default=[1, 4, 16])
    tune.add_argument("--window", type=float, default=1.0)
    tune.add_argument("--max-windows", type=int, default=6)
    tune.add_argument("--overrides-dir", default=str(catalog.OVERRIDES_DIR))
    tune.add_argument("--work-dir", default=None)
    tune.add_argument("--report", help="write every candidate's measurements as JSON here")
    tune.add_argument("--dry-run", action="store_true", help="measure and report, write no override")
    tune.set_defaults(func=cmd_tune)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from local.loadgen import LoadError
    from local.prometheus import PrometheusError
    from local.speech_sample import SpeechSampleError
    from local.stack_outputs import StackOutputError
    from local.tune import TuneError
    from model_repo.catalog import CatalogError
    from model_repo.local_server import TritonStartError
    from model_repo.render import RenderError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CatalogError, RenderError, StackOutputError, TuneError) as exc:
        return _usage_error(str(exc))
    except (TritonStartError, PrometheusError, LoadError, SpeechSampleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
