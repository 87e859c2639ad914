"""Command line: render a stack's Triton model repository, or serve it on a local Triton.

    python -m model_repo render --stack dev --target gpu --out build/model-repo-gpu
    python -m model_repo serve  --stack dev            # cpu repository on a real local tritonserver
    python -m model_repo serve  --stack dev --demo     # ... and run one voice turn through the pipeline
    python -m model_repo catalog --target cpu          # what each model is and which weights it serves

The stack's ``models`` config (``Pulumi.<stack>.yaml``) picks the models and their precision;
``model_repo/overrides/<target>.yaml`` (written by the tuning sweep) adjusts batching and instance
counts. Exit codes: 0 ok, 1 the server failed, 2 bad input (stack, selection, output path).
"""

from __future__ import annotations

import argparse
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np

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


DEMO_SENTENCE = "What are your opening hours on Saturday?"


def make_demo_sample(work: Path, sentence: str = DEMO_SENTENCE) -> tuple[np.ndarray, float]:
    """A spoken question with background noise: espeak-ng speech, resampled and padded with half a
    second of silence each side by sox, mixed with white noise. Returns (16 kHz float32, seconds)."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise CatalogError(f"--demo needs {tool!r} on PATH; install it (apt-get install espeak-ng sox)")
    work.mkdir(parents=True, exist_ok=True)
    raw, speech, noise, mixed = (work / f"{n}.wav" for n in ("raw", "speech", "noise", "mixed"))
    rate = str(catalog.AUDIO_SAMPLE_RATE)
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), sentence], check=True, capture_output=True)
    subprocess.run(
        ["sox", str(raw), "-r", rate, "-c", "1", "-b", "16", str(speech), "pad", "0.5", "0.5"],
        check=True,
        capture_output=True,
    )
    seconds = float(subprocess.run(["soxi", "-D", str(speech)], check=True, capture_output=True, text=True).stdout)
    subprocess.run(
        [
            "sox",
            "-n",
            "-r",
            rate,
            "-c",
            "1",
            "-b",
            "16",
            str(noise),
            "synth",
            f"{seconds}",
            "whitenoise",
            "vol",
            "0.02",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(["sox", "-m", str(speech), str(noise), str(mixed)], check=True, capture_output=True)
    with wave.open(str(mixed), "rb") as handle:
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
    return (pcm.astype(np.float32) / 32768.0), seconds


def run_demo_turn(grpc_url: str, audio: np.ndarray, timeout_s: float = 120.0) -> dict[str, object]:
    """One voice turn through the streaming pipeline over gRPC; returns what came back and its timing."""
    import tritonclient.grpc as grpcclient

    responses: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(grpc_url)
    inputs = [grpcclient.InferInput("AUDIO", [audio.size], "FP32"), grpcclient.InferInput("SAMPLE_RATE", [1], "INT32")]
    inputs[0].set_data_from_numpy(audio.astype(np.float32))
    inputs[1].set_data_from_numpy(np.array([catalog.AUDIO_SAMPLE_RATE], dtype=np.int32))
    result: dict[str, object] = {"transcript": None, "passages": [], "text": "", "audio_s": 0.0}
    started = time.perf_counter()
    client.start_stream(callback=lambda result, error: responses.put((time.perf_counter(), result, error)))
    try:
        client.async_stream_infer(catalog.PIPELINE.name, inputs, enable_empty_final_response=True)
        while True:
            at, res, err = responses.get(timeout=timeout_s)
            if err is not None:
                raise CatalogError(f"the pipeline answered with an error: {err}")
            names = {o.name for o in res.get_response().outputs}
            if "TRANSCRIPT" in names:
                result["transcript"] = res.as_numpy("TRANSCRIPT").reshape(-1)[0].decode("utf-8", "replace")
                result["passages"] = [p.decode("utf-8", "replace") for p in res.as_numpy("PASSAGES").reshape(-1)]
                result.setdefault("transcript_ms", (at - started) * 1000)
            if "TEXT_OUTPUT" in names:
                result.setdefault("first_token_ms", (at - started) * 1000)
                result["text"] += res.as_numpy("TEXT_OUTPUT").reshape(-1)[0].decode("utf-8", "replace")
            if "AUDIO" in names:
                result.setdefault("first_audio_ms", (at - started) * 1000)
                result["audio_s"] += res.as_numpy("AUDIO").size / catalog.AUDIO_SAMPLE_RATE
            if res.get_response().parameters["triton_final_response"].bool_param:
                result["total_ms"] = (at - started) * 1000
                return result
    finally:
        client.stop_stream()
        client.close()


def _print_demo(result: dict[str, object], seconds: float) -> None:
    def ms(key: str) -> str:
        value = result.get(key)
        return "-" if value is None else f"{value:.0f} ms"

    print(f"pipeline turn on a {seconds:.1f} s noisy spoken question ({DEMO_SENTENCE!r}):")
    print(f"  transcript     {result['transcript']!r}   (after {ms('transcript_ms')})")
    print(f"  passages       {len(result['passages'])} retrieved")
    print(f"  LLM text       {str(result['text'])[:200]!r}   (first token after {ms('first_token_ms')})")
    print(f"  TTS audio      {result['audio_s']:.2f} s streamed   (first chunk after {ms('first_audio_ms')})")
    print(f"  total          {ms('total_ms')}")


def cmd_serve(args: argparse.Namespace) -> int:
    from model_repo.local_server import TritonServer, TritonStartError

    if args.exit_after_demo and not args.demo:
        raise CatalogError("--exit-after-demo needs --demo")
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
            if args.demo:
                audio, seconds = make_demo_sample(work / "demo")
                try:
                    _print_demo(run_demo_turn(endpoints.grpc, audio), seconds)
                except (CatalogError, queue.Empty) as exc:
                    print(f"error: the demo turn failed: {exc or 'no response in time'}", file=sys.stderr)
                    return 1
                if args.exit_after_demo:
                    return 0
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
                spec.source.uri,
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
    serve.add_argument(
        "--demo", action="store_true", help="once ready, run one voice turn through the pipeline and print it"
    )
    serve.add_argument("--exit-after-demo", action="store_true", help="stop the server after --demo")
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
