"""``python -m local up``: the whole platform on one machine, for real.

1. The stack's model selection (``Pulumi.<stack>.yaml``) and the catalog's CPU overrides pick the
   models; ``model_repo.render`` renders the CPU repository (artifacts from its content-addressed cache).
2. Every ONNX model's engine is built (or adopted) through the Engine provider with the ONNX Runtime
   builder and the local store (:mod:`local.cpu_engines`); a second run builds nothing.
3. The real ``tritonserver`` (nvidia-pytriton) serves the repository on free loopback ports, with
   strict readiness: every model must load.
4. A real Prometheus scrapes Triton's metrics and evaluates the platform's rules (:mod:`local.prometheus`).
5. One spoken utterance (espeak-ng, 16 kHz) goes through the voice pipeline, and once more through each
   model directly, printing every stage's result and latency.
6. It prints the endpoints, then stops everything cleanly -- or keeps running until Ctrl-C/SIGTERM.

A JSON report of the run is written to ``<work>/up.json``.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from local import cpu_engines, voice_turn
from local.prometheus import JOB, Prometheus
from local.speech_sample import speech_sample
from model_repo import catalog
from model_repo.catalog import ModelSpec
from model_repo.local_server import TritonServer
from model_repo.render import render_repository

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK_DIR = REPO_ROOT / ".local" / "up"
DEFAULT_STORE = REPO_ROOT / ".local" / "store"
PIPELINE = "voice_pipeline"
EXIT_TIMEOUT_S = 30


@dataclass
class UpReport:
    stack: str
    models: list[str]
    engines_built: int = 0
    engines_adopted: int = 0
    engines: list[dict[str, Any]] = field(default_factory=list)
    endpoints: dict[str, str] = field(default_factory=dict)
    prometheus: dict[str, Any] = field(default_factory=dict)
    pipeline: dict[str, Any] | None = None
    direct: dict[str, Any] | None = None
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The sample question: the knowledge base answers it (model_repo/artifacts/corpus), so the reply can make sense. Clean
# speech: Whisper tiny.en loses words of espeak-ng's voice in noise (bench/results/local_sense_cpu.json).
SAMPLE_QUESTION = "How do I reset my password?"


def stack_models(stack: str, only: Sequence[str] = (), overrides_dir: Path = catalog.OVERRIDES_DIR) -> list[ModelSpec]:
    """The stack's enabled models (``--only``: those and what they call), with the CPU overrides applied."""
    from platform_spec.settings import SettingsError, load_stack_settings

    try:
        settings = load_stack_settings(stack)
    except SettingsError as exc:
        raise catalog.CatalogError(str(exc)) from None
    specs = catalog.select(settings.models)
    if only:
        by_name = {s.name: s for s in specs}
        unknown = [n for n in only if n not in by_name]
        if unknown:
            raise catalog.CatalogError(
                f"--only {','.join(unknown)}: not enabled in stack {stack}; enabled: {sorted(by_name)}"
            )
        keep, todo = set(), list(only)
        while todo:
            name = todo.pop()
            if name not in keep:
                keep.add(name)
                todo.extend(by_name[name].depends_on)
        specs = [s for s in specs if s.name in keep]
    return catalog.apply_overrides(specs, "cpu", catalog.load_overrides("cpu", overrides_dir))


def _quiet_onnxruntime() -> None:
    # The engine builder's parity probe feeds random inputs; models that reject them (a sample-rate
    # input, token-type ids) make ONNX Runtime print errors that are expected and handled.
    import onnxruntime

    onnxruntime.set_default_logger_severity(4)


def up(
    stack: str,
    *,
    work_dir: Path = DEFAULT_WORK_DIR,
    store: Path = DEFAULT_STORE,
    only: Sequence[str] = (),
    keep_running: bool = False,
    max_tokens: int = 48,
    startup_timeout_s: float = 600.0,
    out: Callable[[str], None] = print,
    stop_event: threading.Event | None = None,
) -> UpReport:
    work_dir = Path(work_dir).resolve()
    started = time.monotonic()
    specs = stack_models(stack, only)
    report = UpReport(stack=stack, models=[s.name for s in specs])
    out(f"[1/5] rendering the cpu repository of stack {stack} ({len(specs)} models) into {work_dir / 'repository'}")
    result = render_repository(
        specs, "cpu", work_dir / "repository", replace=True, progress=lambda m: out(f"      {m}")
    )
    report.timings_s["render"] = time.monotonic() - started

    out(f"[2/5] engines through the Engine provider (ONNX Runtime builder, store {store})")
    _quiet_onnxruntime()
    mark = time.monotonic()
    engines = cpu_engines.build_engines(result.out, Path(store), progress=lambda m: out(f"      {m}"))
    report.engines = [asdict(e) for e in engines]
    report.engines_built = sum(1 for e in engines if not e.cache_hit)
    report.engines_adopted = sum(1 for e in engines if e.cache_hit)
    report.timings_s["engines"] = time.monotonic() - mark
    out(f"      {report.engines_built} built, {report.engines_adopted} adopted from the store")

    out("[3/5] starting tritonserver (strict readiness: every model must load)")
    mark = time.monotonic()
    # The torch-based models (LLM) take several seconds to unload: give the drain room to finish cleanly.
    server = TritonServer(
        result.out, work_dir=work_dir / "server", startup_timeout_s=startup_timeout_s, exit_timeout_s=EXIT_TIMEOUT_S
    )
    server.start()
    prometheus: Prometheus | None = None
    try:
        endpoints = server.endpoints
        report.timings_s["triton_start"] = time.monotonic() - mark
        report.endpoints = {"http": endpoints.http_url, "grpc": endpoints.grpc, "metrics": endpoints.metrics_url}

        out("[4/5] starting prometheus (scraping Triton, loading the platform's rules)")
        prometheus = Prometheus([f"{endpoints.host}:{endpoints.metrics_port}"])
        prometheus.start()
        report.endpoints["prometheus"] = prometheus.url
        prometheus.wait_for(f'up{{job="{JOB}"}} == 1')
        groups = prometheus.rule_groups()
        report.prometheus = {
            "url": prometheus.url,
            "rule_files": len(prometheus.rules),
            "rule_groups": len(groups),
            "rules": sum(len(g.get("rules", [])) for g in groups),
        }

        out(f"[5/5] one voice turn: {SAMPLE_QUESTION!r} spoken by espeak-ng (16 kHz)")
        # Half a second of silence either side, as a caller's utterance has (speech from the first sample clips it).
        audio = speech_sample(SAMPLE_QUESTION, lead_silence_s=0.5, tail_silence_s=0.5).noisy
        if PIPELINE in report.models:
            _voice_turns(report, endpoints.grpc, audio, max_tokens, work_dir / "reply.wav", out)
        else:
            out(f"      {PIPELINE} is not among the selected models; skipped")
        if report.pipeline is not None:
            # Prometheus saw the requests the turn made (one scrape interval later).
            served = prometheus.wait_for("sum by (model) (nv_inference_request_success) > 0")
            report.prometheus["models_with_requests"] = sorted(r["metric"]["model"] for r in served)
            # ... and the turn's own waterfall, as the pipeline reported it (model_repo _common/turn_metrics.py).
            stages = prometheus.wait_for("sum by (stage) (voice_turn_stage_seconds_sum) > 0")
            report.prometheus["turn_waterfall_s"] = {r["metric"]["stage"]: float(r["value"][1]) for r in stages}
        report.timings_s["total"] = time.monotonic() - started
        _print_summary(report, server, out)
        (work_dir / "up.json").write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        if keep_running:
            _wait_until_stopped(server, out, stop_event or threading.Event())
    finally:
        if prometheus is not None:
            prometheus.stop()
        code = server.stop()
        out(f"stopped prometheus and tritonserver (exit code {code})")
    return report


def _voice_turns(
    report: UpReport, url: str, audio, max_tokens: int, reply_wav: Path, out: Callable[[str], None]
) -> None:
    from local.triton_calls import grpc_client

    client = grpc_client(url)
    try:
        settings = voice_turn.pipeline_settings(client.get_model_config(PIPELINE, as_json=True)["config"])
        # One turn each way first: the first call of every model pays one-time costs (thread pools, caches)
        # that are not what a turn costs.
        voice_turn.pipeline_turn(client, PIPELINE, audio, max_tokens)
        voice_turn.direct_turn(client, settings, audio, max_tokens)
        chunks: list = []
        turn = voice_turn.pipeline_turn(client, PIPELINE, audio, max_tokens, reply_audio=chunks)
        direct = voice_turn.direct_turn(client, settings, audio, max_tokens)
    finally:
        client.close()
    report.pipeline = asdict(turn)
    report.direct = asdict(direct)
    out(f"      audio in: {audio.size / 16000:.2f} s of speech")
    out("      per stage (each model called directly):")
    for stage in direct.stages:
        out(f"        {stage.name:<10} {stage.model:<16} {stage.ms:8.1f} ms  {stage.result}")
    out(f"        {'total':<10} {'':<16} {direct.total_ms:8.1f} ms")
    out(f"      through {PIPELINE} (one streamed gRPC call, BLS on the server):")
    nan = float("nan")
    out(f"        transcript   {turn.transcript_ms or nan:8.1f} ms  {turn.transcript[:60]!r}")
    out(f"        first text   {turn.first_text_ms or nan:8.1f} ms  ({len(turn.passages)} passages grounding it)")
    out(f"        first audio  {turn.first_audio_ms or nan:8.1f} ms")
    out(f"        final        {turn.total_ms:8.1f} ms  answer {turn.answer[:50]!r}, {turn.audio_seconds:.2f} s audio")
    if chunks:
        soundfile.write(reply_wav, np.concatenate(chunks), 16_000, subtype="PCM_16")
    out(f"      you said:   {turn.transcript!r}")
    out(f"      the answer: {turn.answer!r}")
    out(
        f"      reply audio: {reply_wav if chunks else 'none'} ({turn.audio_seconds:.2f} s), first audio after "
        f"{turn.first_audio_ms or nan:.0f} ms"
    )


def _print_summary(report: UpReport, server: TritonServer, out: Callable[[str], None]) -> None:
    out("")
    out("endpoints:")
    for name, url in report.endpoints.items():
        out(f"  {name:<10} {url}")
    out(f"  log        {server.log_path}")
    prom = report.prometheus
    out(f"prometheus: {prom.get('rule_files', 0)} rule files, {prom.get('rules', 0)} rules loaded; scraping Triton")
    if prom.get("turn_waterfall_s"):
        waterfall = ", ".join(f"{stage} {seconds * 1000:.0f} ms" for stage, seconds in prom["turn_waterfall_s"].items())
        out(f"  turn waterfall in Prometheus (voice_turn_stage_seconds): {waterfall}")
    random = [m for m in report.models if catalog.CATALOG[m].target("cpu").weights == catalog.WEIGHTS_RANDOM]
    if random:
        out(f"note: {', '.join(random)} run real architectures with random weights (not trained).")
    t = report.timings_s
    out(
        f"timings: render {t.get('render', 0):.1f}s, engines {t.get('engines', 0):.1f}s "
        f"({report.engines_built} built), triton start {t.get('triton_start', 0):.1f}s, total {t.get('total', 0):.1f}s"
    )


def _wait_until_stopped(server: TritonServer, out: Callable[[str], None], stop: threading.Event) -> None:
    out("running; Ctrl-C or SIGTERM stops it.")
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            if not server.is_running():
                raise RuntimeError(f"tritonserver exited unexpectedly:\n{server.log_tail()}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
