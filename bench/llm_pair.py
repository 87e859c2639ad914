"""Two LLMs on one GPU under the pool's memory plan: time to first token, tokens/s and peak memory against the plan.

Serves the LLM pool's repository that ``python -m tests.gpu_standins.repository DIR`` writes to ``DIR/llm_pair``:
``llm_chat`` and ``llm_support`` as the stack renders them (KV budgets from platform_spec.llm_memory for the GPU),
their serving code unchanged, TensorRT-LLM's LLM API played by tests/gpu_standins/trtllm_torch (a random-weight
Llama of Llama-3.1-8B's shape in PyTorch, FP8 weights and KV cache, in-flight batching over a paged KV cache). Both
models stream at once, ``c`` concurrent greedy chats each, every level run ``--repeats`` times (min / median).

    python bench/llm_pair.py --repository DIR/llm_pair --concurrency 1,8,32 --max-tokens 128 --repeats 3

Not TensorRT-LLM: its FP8 GEMMs, CUDA graphs and kernels are faster than this stand-in's BF16 compute on
dequantized weights, so times here are an upper bound; the memory is the point (weights, the KV cache allocated at
start, the runtime's peak).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from local.stats import percentile  # noqa: E402
from model_repo.local_server import TritonServer  # noqa: E402
from tests.gpu_standins import checks  # noqa: E402
from tests.gpu_standins.checks import LLM_PAIR  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
GIB = 2**30


def one_run(server: TritonServer, concurrency: int, max_tokens: int) -> dict[str, Any]:
    started = time.monotonic()
    streams = checks.llm_streams(server, LLM_PAIR, per_model=concurrency, max_tokens=max_tokens)
    wall = time.monotonic() - started
    every = [s for model in LLM_PAIR for s in streams[model]]
    if not all(final for *_, final in every):
        raise RuntimeError("a stream ended without the final flag")
    return {
        "streams": len(every),
        "ttft_p50_ms": 1000 * percentile([s[0] for s in every], 50),
        "ttft_p95_ms": 1000 * percentile([s[0] for s in every], 95),
        "tokens_per_s_total": sum(s[2] for s in every) / wall,
        "tokens_per_s_per_stream_p50": statistics.median((s[2] - 1) / max(s[1] - s[0], 1e-9) for s in every),
    }


def gpu_memory_used_mib() -> float | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        return float(out.split()[0])
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", required=True, type=Path)
    parser.add_argument("--concurrency", default="1,8,32", help="concurrent streams per model")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "llm_pair_gpu.json"))
    args = parser.parse_args(argv)
    plan = json.loads((args.repository / "memory_plan.json").read_text())
    report: dict[str, Any] = {
        "command": " ".join(["python", "bench/llm_pair.py", *(argv if argv is not None else sys.argv[1:])]),
        "plan": plan,
        "results": [],
    }
    with TritonServer(args.repository, work_dir=Path(tempfile.mkdtemp(prefix="llm-pair-")), startup_timeout_s=600) as s:
        report["gpu_memory_used_mib_idle"] = gpu_memory_used_mib()
        one_run(s, 2, 8)  # warm-up, not counted
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            runs = [one_run(s, concurrency, args.max_tokens) for _ in range(args.repeats)]
            summary = {k: {"min": min(r[k] for r in runs), "median": statistics.median(r[k] for r in runs)}
                       for k in runs[0] if k != "streams"}  # fmt: skip
            report["results"].append({"concurrency_per_model": concurrency, "runs": runs, "summary": summary})
            print(f"{concurrency} per model: {json.dumps(summary)}", flush=True)
        report["gpu_memory_used_mib_after"] = gpu_memory_used_mib()
        report["models"] = {}
        for model in LLM_PAIR:
            stats = checks.llm_stats(args.repository, model)
            planned = plan["models"][model]
            report["models"][model] = {
                "device": stats["device"],
                "weights_gib": stats["weights_bytes"] / GIB,
                "planned_weights_gib": planned["weightsGib"],
                "kv_cache_gib": stats["kv_cache_bytes"] / GIB,
                "planned_kv_cache_gib": planned["kvCacheGib"],
                "kv_cache_tokens": stats["kv_cache_tokens"],
                "peak_reserved_gib": (stats["peak_reserved_bytes"] or 0) / GIB,
                "planned_total_gib": planned["weightsGib"] + planned["kvCacheGib"] + planned["runtimeGib"],
            }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print("per model | TTFT p50 ms | TTFT p95 ms | tokens/s total | tokens/s per stream (min / median)")
    for result in report["results"]:
        s = result["summary"]
        cells = [f"{s[k]['min']:.1f} / {s[k]['median']:.1f}" for k in
                 ("ttft_p50_ms", "ttft_p95_ms", "tokens_per_s_total", "tokens_per_s_per_stream_p50")]  # fmt: skip
        print(f"{result['concurrency_per_model']} | " + " | ".join(cells))
    for model, m in report["models"].items():
        print(f"{model}: weights {m['weights_gib']:.2f} GiB (plan {m['planned_weights_gib']}), "
              f"KV {m['kv_cache_gib']:.2f} GiB (plan {m['planned_kv_cache_gib']}), "
              f"peak reserved {m['peak_reserved_gib']:.2f} GiB (plan total {m['planned_total_gib']:.1f})")  # fmt: skip
    print(f"GPU memory used: {report['gpu_memory_used_mib_after']} MiB; plan {plan['totalGib']} GiB; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
