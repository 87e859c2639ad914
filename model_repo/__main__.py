"""Command line: render a stack's Triton model repository, or serve it on a local Triton.

    python -m model_repo render --stack dev --target gpu --out build/model-repo-gpu
    python -m model_repo serve  --stack dev            # cpu repository on a real local tritonserver
    # one voice turn through it, with Prometheus and the engines: python -m local up --stack dev
    python -m model_repo catalog --target cpu          # what each model is and which weights it serves

The stack's ``models`` config (``Pulumi.<stack>.yaml``) picks the models and their precision;
``model_repo/overrides/<target>.yaml`` (written by the tuning sweep) adjusts batching and instance
counts. Exit codes: 0 ok, 1 the server failed, 2 bad input (stack, selection, output path).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from model_repo import catalog
from model_repo.catalog import CatalogError, ModelSpec
from model_repo.render import LLM_VARIANT_MODES, RenderError, RenderResult, render_repository


def _load_selection(stack: str) -> list[ModelSpec]:
    # Imported here so `catalog` works without the Pulumi-side settings module's dependencies.
    from platform_spec.settings import SettingsError, load_stack_settings

    try:
        settings = load_stack_settings(stack)
    except SettingsError as exc:
        raise CatalogError(str(exc)) from None
    return catalog.select(settings.models)


def _restrict(specs: list[ModelSpec], only: Sequence[str]) -> list[ModelSpec]:
    """Keep the named models and what they call, in dependency order."""
    if not only:
        return specs
    by_name = {s.name: s for s in specs}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        raise CatalogError(f"--only {','.join(unknown)}: not enabled in this stack; enabled: {sorted(by_name)}")
    keep: set[str] = set()
    todo = list(only)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(by_name[name].depends_on)
    return [s for s in specs if s.name in keep]


def _specs_for(args: argparse.Namespace, target: str) -> list[ModelSpec]:
    specs = _restrict(_load_selection(args.stack), args.only)
    overrides = catalog.load_overrides(target, Path(args.overrides_dir))
    return catalog.apply_overrides(specs, target, overrides)


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def _print_models(result: RenderResult) -> None:
    rows = [("model", "role", "backend", "precision", "weights")]
    for m in result.models:
        rows.append((m.name, m.role, m.config.backend or m.config.platform, m.precision, m.weights))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def cmd_render(args: argparse.Namespace) -> int:
    specs = _specs_for(args, args.target)
    result = render_repository(
        specs,
        args.target,
        Path(args.out),
        llm_variants=args.llm_variants,
        replace=args.replace,
        python_models_dir=args.python_models_dir,
        progress=_progress,
    )
    print(f"rendered {len(result.models)} models for target {args.target} into {result.out}")
    _print_models(result)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from model_repo.local_server import TritonServer, TritonStartError

    specs = _specs_for(args, "cpu")
    own_dir = args.work_dir is None
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="model-repo-serve-"))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"rendering the cpu repository for stack {args.stack} into {work / 'repository'}", flush=True)
        result = render_repository(
            specs,
            "cpu",
            work / "repository",
            replace=True,
            python_models_dir=args.python_models_dir,
            progress=_progress,
        )
        server = TritonServer(result.out, work_dir=work / "server", startup_timeout_s=args.startup_timeout)
        print("starting tritonserver (strict readiness: every model must load) ...", flush=True)
        try:
            endpoints = server.start()
        except TritonStartError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        try:
            print(f"Triton is ready (pid {server.pid}, log {server.log_path})")
            print(f"  HTTP     {endpoints.http_url}")
            print(f"  gRPC     {endpoints.grpc}")
            print(f"  metrics  {endpoints.metrics_url}")
            print("models:")
            _print_models(result)
            random = [m.name for m in result.models if m.weights == catalog.WEIGHTS_RANDOM]
            if random:
                print(f"note: {', '.join(random)} run real architectures with random weights (not trained).")
            print("Ctrl-C or SIGTERM stops the server.", flush=True)
            while not stop.wait(0.5):
                if not server.is_running():
                    print(f"error: tritonserver exited unexpectedly:\n{server.log_tail()}", file=sys.stderr)
                    return 1
        finally:
            code = server.stop()
            print(f"tritonserver stopped (exit code {code})", flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)


def cmd_catalog(args: argparse.Namespace) -> int:
    rows = [("model", "role", "pool", "precision", "allowed", "gpu MiB", "p99 ms", "weights", "source")]
    for spec in catalog.CATALOG.values():
        d = catalog.describe(spec, args.target)
        served = spec.target(args.target).artifact or spec.source  # what this target loads (cpu: the packaged model)
        rows.append(
            (
                spec.name,
                spec.role,
                spec.pool,
                d["precision"],
                "/".join(spec.precision.allowed),
                str(d["gpu_memory_mib"]),
                str(spec.latency_slo_p99_ms),
                d["weights"],
                served.uri,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model_repo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--stack", required=True, help="stack name: reads Pulumi.<stack>.yaml at the repository root")
        p.add_argument(
            "--only",
            type=lambda s: [n for n in s.split(",") if n],
            default=[],
            help="comma-separated models to include (their dependencies come along)",
        )
        p.add_argument("--overrides-dir", default=str(catalog.OVERRIDES_DIR), help="where <target>.yaml overrides live")
        p.add_argument(
            "--python-models-dir",
            default=None,
            help="Python-backend model sources (default: model_repo/python_models); for trying models in development",
        )

    render = sub.add_parser("render", help="write the Triton model repository for a target")
    common(render)
    render.add_argument("--target", required=True, choices=catalog.TARGETS)
    render.add_argument("--out", required=True, help="output directory (must be empty unless --replace)")
    render.add_argument("--llm-variants", default="separate", choices=LLM_VARIANT_MODES)
    render.add_argument("--replace", action="store_true", help="replace an existing repository at --out")
    render.set_defaults(func=cmd_render)

    serve = sub.add_parser("serve", help="render the cpu repository and serve it on a local tritonserver")
    common(serve)
    serve.add_argument("--work-dir", default=None, help="keep the repository and server log here (default: temp)")
    serve.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for every model")
    serve.set_defaults(func=cmd_serve)

    cat = sub.add_parser("catalog", help="list the catalog")
    cat.add_argument("--target", default="gpu", choices=catalog.TARGETS)
    cat.set_defaults(func=cmd_catalog)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CatalogError, RenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
