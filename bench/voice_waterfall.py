"""The voice turn's waterfall under concurrent load: what the pipeline reports per turn (its metrics on Triton's
metrics port, ``model_repo/python_models/_common/turn_metrics.py``) and what the client sees.

For each concurrency, ``--turns`` turns run through ``voice_pipeline`` from that many client threads; the run is
repeated ``--repeats`` times and the table shows min / median over the repeats of: turns/s, the client's time to
first audio p50/p95 (from sending the request), the server's mean time to first audio (from the end of speech, as
the pipeline's instance sees it), Triton's mean queue time before the pipeline picks a turn up, and the mean of each
waterfall stage (metric deltas over the run). Writes ``bench/results/voice_waterfall_<device>.json``
with the exact command.

    .venv/bin/python bench/voice_waterfall.py --concurrency 1,2,4 --turns 8 --repeats 3

On this repository's CPU target the ASR and the LLM are random-weight models of the real architectures, so the
stage times are real compute on real shapes, not a production GPU's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from local.speech_sample import speak  # noqa: E402
from local.stats import percentile  # noqa: E402
from local.triton_calls import grpc_client  # noqa: E402
from local.voice_turn import pipeline_turn  # noqa: E402
from model_repo import catalog  # noqa: E402
from model_repo.local_server import TritonServer  # noqa: E402
from model_repo.render import render_repository  # noqa: E402

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

    keys = ("turns_per_s", "client_first_audio_p50_ms", "client_first_audio_p95_ms", "server_first_audio_mean_ms",
            "pipeline_queue_mean_ms")
    out = {k: stat([r[k] for r in runs]) for k in keys}
    out["stages_mean_ms"] = {s: stat([r["stages_mean_ms"][s] for r in runs]) for s in STAGES}
    return out


def table(results: list[dict[str, Any]]) -> str:
    head = ["conc", "turns/s", "client TTFA p50", "client TTFA p95", "server TTFA", "pipeline queue", *STAGES]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for result in results:
        s = result["summary"]

        def cell(value: dict[str, float], digits: int = 0) -> str:
            return f"{value['min']:.{digits}f} / {value['median']:.{digits}f}"

        row = [str(result["concurrency"]), cell(s["turns_per_s"], 2), cell(s["client_first_audio_p50_ms"]),
               cell(s["client_first_audio_p95_ms"]), cell(s["server_first_audio_mean_ms"]),
               cell(s["pipeline_queue_mean_ms"]),
               *(cell(s["stages_mean_ms"][stage]) for stage in STAGES)]  # fmt: skip
        lines.append(" | ".join(row))
    return "\n".join(lines) + "\n(min / median over the repeats; milliseconds unless turns/s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,2,4")
    parser.add_argument("--turns", type=int, default=8, help="turns per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--out", default=str(RESULTS / "voice_waterfall_cpu.json"))
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]

    work = Path(tempfile.mkdtemp(prefix="voice-waterfall-"))
    rendered = render_repository(catalog.select({}), "cpu", work / "repository")
    speech = speak(noise_level=0.01)
    server = TritonServer(rendered.out, work_dir=work / "server", startup_timeout_s=600)
    server.start()
    try:
        pipeline_turn(grpc_client(server.endpoints.grpc), PIPELINE, speech, args.max_tokens)  # warm-up, not counted
        results = []
        for concurrency in levels:
            runs = [one_run(server, speech, concurrency, args.turns, args.max_tokens) for _ in range(args.repeats)]
            results.append({"concurrency": concurrency, "runs": runs, "summary": summarise(runs)})
            print(f"concurrency {concurrency}: done", flush=True)
    finally:
        server.stop()
    report = {
        "command": " ".join(["python", "bench/voice_waterfall.py", *(argv if argv is not None else sys.argv[1:])]),
        "device": f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "note": "CPU target: ASR and LLM are random-weight models of the real architectures (not trained)",
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
