"""The voice turn's waterfall under concurrent load: what the pipeline reports per turn (its metrics on Triton's
metrics port, ``model_repo/python_models/_common/turn_metrics.py``) and what the client sees.

For each concurrency, ``--turns`` turns run through ``voice_pipeline`` from that many client threads; the run is
repeated ``--repeats`` times and the table shows min / median over the repeats of: turns/s, the client's time to
first audio p50/p95 (from sending the request), the server's mean time to first audio (from the end of speech, as
the pipeline's instance sees it), Triton's mean queue time before the pipeline picks a turn up, and the mean of each
waterfall stage (metric deltas over the run). Writes ``bench/results/voice_waterfall_<device>.json``
with the exact command.

    .venv/bin/python bench/voice_waterfall.py --concurrency 1,2,4 --turns 8 --repeats 3

On this repository's CPU target the models are the small trained ones the local run serves (Whisper tiny.en,
SmolLM2-135M, hibari): stage times are real compute on 2 CPU cores, not a production GPU's.

With ``--speech-repository``/``--llm-repository`` it serves those instead, as the gpu target deploys them: the speech
pool's server (``tests/gpu_standins``: the rendered gpu repository, engine stand-ins in place of the TensorRT plans)
and the LLM pool's server beside it; ``--speech-npy`` gives the utterance where espeak-ng is absent. It also measures
what the pipeline adds: at one turn at a time, the pipeline's time to its first response (transcript + passages,
after ANC, VAD, ASR, embed, retrieval) against the same stages called one by one from the client
(``local.voice_turn.direct_transcript``), ``--overhead-turns`` of each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from local.speech_sample import speak  # noqa: E402
from local.stats import percentile  # noqa: E402
from local.triton_calls import grpc_client  # noqa: E402
from local.voice_turn import TurnResult, direct_transcript, pipeline_settings, pipeline_turn  # noqa: E402
from model_repo.local_server import TritonServer  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results"
PIPELINE = "voice_pipeline"
STAGES = ("asr", "retrieval", "llm_first_token", "first_phrase", "tts_first_audio")


def scrape(url: str) -> dict[tuple[str, str], float]:
    """(series name, stage label or "") -> value, for the pipeline's turn metrics and its Triton queue counters."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    values: dict[tuple[str, str], float] = {}
    pattern = r"^(voice_turn\w*|nv_inference_queue_duration_us|nv_inference_request_success)\{([^}]*)\} (\S+)$"
    for match in re.finditer(pattern, text, re.MULTILINE):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match[2]))
        if "le" in labels or labels.get("model", PIPELINE) != PIPELINE:
            continue
        key = (match[1], labels.get("stage", ""))
        values[key] = values.get(key, 0.0) + float(match[3])
    return values


def one_run(server: TritonServer, speech: np.ndarray, concurrency: int, turns: int, max_tokens: int) -> dict[str, Any]:
    before = scrape(server.endpoints.metrics_url)
    first_audio_ms: list[float] = []
    transcript_ms: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    per_thread = [turns // concurrency + (1 if i < turns % concurrency else 0) for i in range(concurrency)]

    def work(count: int) -> None:
        client = grpc_client(server.endpoints.grpc)
        try:
            for _ in range(count):
                turn = pipeline_turn(client, PIPELINE, speech, max_tokens)
                with lock:
                    first_audio_ms.append(turn.first_audio_ms)
                    transcript_ms.append(turn.transcript_ms)
        except BaseException as exc:  # noqa: BLE001 -- reported after the run
            errors.append(exc)
        finally:
            client.close()

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(n,)) for n in per_thread if n]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    if errors:
        raise RuntimeError(f"{len(errors)} turns failed: {errors[0]!r}")
    after = scrape(server.endpoints.metrics_url)

    def delta(name: str, stage: str = "") -> float:
        return after.get((name, stage), 0.0) - before.get((name, stage), 0.0)

    count = delta("voice_turn_time_to_first_audio_seconds_count")
    return {
        "turns": len(first_audio_ms),
        "wall_s": wall,
        "turns_per_s": len(first_audio_ms) / wall,
        "client_first_audio_p50_ms": percentile(first_audio_ms, 50),
        "client_first_audio_p95_ms": percentile(first_audio_ms, 95),
        "client_first_audio_p99_ms": percentile(first_audio_ms, 99),
        "client_transcript_p50_ms": percentile(transcript_ms, 50),
        "server_first_audio_mean_ms": 1000 * delta("voice_turn_time_to_first_audio_seconds_sum") / count,
        # Triton's queue before the pipeline's instance picks a turn up: outside the turn's own clock.
        "pipeline_queue_mean_ms": delta("nv_inference_queue_duration_us") / 1e3 / delta("nv_inference_request_success"),
        "stages_mean_ms": {
            s: 1000 * delta("voice_turn_stage_seconds_sum", s) / delta("voice_turn_stage_seconds_count", s)
            for s in STAGES
        },
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def stat(values: list[float]) -> dict[str, float]:
        return {"min": min(values), "median": statistics.median(values)}

    keys = (
        "turns_per_s",
        "client_first_audio_p50_ms",
        "client_first_audio_p95_ms",
        "client_first_audio_p99_ms",
        "client_transcript_p50_ms",
        "server_first_audio_mean_ms",
        "pipeline_queue_mean_ms",
    )
    out = {k: stat([r[k] for r in runs]) for k in keys}
    out["stages_mean_ms"] = {s: stat([r["stages_mean_ms"][s] for r in runs]) for s in STAGES}
    return out


def table(results: list[dict[str, Any]]) -> str:
    head = ["conc", "turns/s", "client TTFA p50", "client TTFA p95", "client TTFA p99", "server TTFA",
            "pipeline queue", *STAGES]  # fmt: skip
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for result in results:
        s = result["summary"]

        def cell(value: dict[str, float], digits: int = 0) -> str:
            return f"{value['min']:.{digits}f} / {value['median']:.{digits}f}"

        row = [str(result["concurrency"]), cell(s["turns_per_s"], 2), cell(s["client_first_audio_p50_ms"]),
               cell(s["client_first_audio_p95_ms"]), cell(s["client_first_audio_p99_ms"]),
               cell(s["server_first_audio_mean_ms"]),
               cell(s["pipeline_queue_mean_ms"]),
               *(cell(s["stages_mean_ms"][stage]) for stage in STAGES)]  # fmt: skip
        lines.append(" | ".join(row))
    return "\n".join(lines) + "\n(min / median over the repeats; milliseconds unless turns/s)"


def overhead(server: TritonServer, speech: np.ndarray, turns: int) -> dict[str, Any]:
    """The pipeline's time to its first response against the same stages called from the client, one turn at a
    time, interleaved so both see the same server state."""
    client = grpc_client(server.endpoints.grpc)
    try:
        settings = pipeline_settings(client.get_model_config(PIPELINE, as_json=True)["config"])
        pipeline_ms, direct_ms = [], []
        for _ in range(turns):
            pipeline_ms.append(pipeline_turn(client, PIPELINE, speech, 1).transcript_ms)
            direct = TurnResult()
            direct_transcript(client, settings, speech, direct)
            direct_ms.append(direct.transcript_ms)
    finally:
        client.close()
    p50_pipeline, p50_direct = percentile(pipeline_ms, 50), percentile(direct_ms, 50)
    return {"turns": turns, "pipeline_p50_ms": p50_pipeline, "direct_p50_ms": p50_direct,
            "added_p50_ms": p50_pipeline - p50_direct}  # fmt: skip


def device_name() -> str:
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()  # fmt: skip
        return f"gpu: {gpu[0]} x{len(gpu)}"
    except (OSError, subprocess.CalledProcessError):
        return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,2,4")
    parser.add_argument("--turns", type=int, default=8, help="turns per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--out", default=str(RESULTS / "voice_waterfall_cpu.json"))
    parser.add_argument("--speech-repository", help="the speech pool's repository (with --llm-repository)")
    parser.add_argument("--llm-repository", help="the LLM pool's repository")
    parser.add_argument("--speech-npy", help="the utterance (16 kHz float32 .npy) instead of espeak-ng's")
    parser.add_argument("--overhead-turns", type=int, default=10)
    parser.add_argument("--note", default="CPU target: Whisper tiny.en, SmolLM2-135M-Instruct, hibari (trained, small)")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]

    work = Path(tempfile.mkdtemp(prefix="voice-waterfall-"))
    speech = np.load(args.speech_npy) if args.speech_npy else speak(noise_level=0.01)
    with ExitStack() as stack:
        if args.speech_repository:
            from tests.gpu_standins.checks import pools

            server = stack.enter_context(pools(Path(args.speech_repository), Path(args.llm_repository), work)).speech
        else:
            from model_repo import catalog
            from model_repo.render import render_repository

            rendered = render_repository(catalog.select({}), "cpu", work / "repository")
            server = stack.enter_context(TritonServer(rendered.out, work_dir=work / "server", startup_timeout_s=600))
        warm = grpc_client(server.endpoints.grpc)
        for _ in range(3):  # warm-up (first calls set up kernels and caches), not counted
            pipeline_turn(warm, PIPELINE, speech, args.max_tokens)
        warm.close()
        # Repeated like every other figure: one p50 difference of a few milliseconds is not a result on its own.
        overheads = [overhead(server, speech, args.overhead_turns) for _ in range(args.repeats)]
        added_ms = [o["added_p50_ms"] for o in overheads]
        added = {"runs": overheads, "added_p50_ms": {"min": min(added_ms), "median": statistics.median(added_ms)}}
        print(
            f"pipeline adds {min(added_ms):.2f} / {statistics.median(added_ms):.2f} ms p50 (min / median of"
            f" {args.repeats}) to its first response",
            flush=True,
        )
        report = {
            "command": " ".join(["python", "bench/voice_waterfall.py", *(argv if argv is not None else sys.argv[1:])]),
            "device": device_name(),
            "note": args.note,
            "pipeline_overhead": added,
            "results": [],
        }
        for concurrency in levels:
            turns = max(args.turns, concurrency)
            runs = [one_run(server, speech, concurrency, turns, args.max_tokens) for _ in range(args.repeats)]
            report["results"].append({"concurrency": concurrency, "runs": runs, "summary": summarise(runs)})
            # Written after every level: a run stopped at a time limit keeps the levels it finished.
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
            print(f"concurrency {concurrency}: done", flush=True)
    print(table(report["results"]))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
