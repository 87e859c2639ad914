"""What streaming a stage over gRPC to the same server costs against decoupled BLS, inside a Python model.

The voice pipeline streams its decoupled stages (TTS; the LLM on the cpu target) over gRPC to its own server, since
decoupled BLS frees responses without the GIL on Triton 2.51 (``model_repo/python_models/_common/bls.py``). This
measures the price: a coroutine model (``bench/stream_transport_models/timer.py``) streams a TTS-like stage
(``--chunks`` responses of ``--chunk-samples`` float32: 200 ms of 16 kHz audio by default) ``--rounds`` times each
way, in interleaved blocks, and times the first response and the whole stream inside the stub. Repeated ``--repeats``
times; the table shows min / median over the repeats of each transport's p50 / p95, and the difference of the
p50s. Writes ``bench/results/stream_transport_<device>.json`` with the exact command.

    .venv/bin/python bench/stream_transport.py --rounds 200 --repeats 3

(The BLS side may crash its stub, the bug this avoids; the run then stops and says so.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from bench.voice_waterfall import device_name  # noqa: E402
from local.stats import percentile  # noqa: E402
from local.triton_calls import grpc_client  # noqa: E402
from model_repo.local_server import TritonServer  # noqa: E402
from tests.model_repo import python_backend_probes as probes  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results"
MODELS = REPO_ROOT / "bench" / "stream_transport_models"
TRANSPORTS = ("bls", "grpc")
BLOCKS = 10  # rounds of each transport alternate in this many blocks, so drift hits both alike


def repository(root: Path, chunks: int, samples: int) -> Path:
    probes.add(root, "chunks", MODELS / "chunks.py", inputs=("N",), decoupled=True, samples=str(samples),
               outputs={"AUDIO": ("TYPE_FP32", -1)})  # fmt: skip
    probes.add(root, "timer", MODELS / "timer.py", inputs=("ROUNDS", "VIA"), chunks=str(chunks),
               outputs={"FIRST_US": ("TYPE_FP64", -1), "TOTAL_US": ("TYPE_FP64", -1)})  # fmt: skip
    return root


def timed(client, transport: str, rounds: int) -> tuple[list[float], list[float]]:
    import tritonclient.grpc as grpcclient

    inputs = [grpcclient.InferInput("ROUNDS", [1], "INT32"), grpcclient.InferInput("VIA", [1], "INT32")]
    inputs[0].set_data_from_numpy(np.array([rounds], dtype=np.int32))
    inputs[1].set_data_from_numpy(np.array([TRANSPORTS.index(transport)], dtype=np.int32))
    result = client.infer("timer", inputs, client_timeout=300)
    return result.as_numpy("FIRST_US").tolist(), result.as_numpy("TOTAL_US").tolist()


def one_repeat(client, rounds: int) -> dict[str, dict[str, float]]:
    samples = {t: {"first": [], "total": []} for t in TRANSPORTS}
    for block in range(BLOCKS):
        for transport in TRANSPORTS if block % 2 == 0 else reversed(TRANSPORTS):
            first, total = timed(client, transport, max(1, rounds // BLOCKS))
            samples[transport]["first"] += first
            samples[transport]["total"] += total
    summary = {
        t: {f"{kind}_{q}_us": percentile(s[kind], q) for kind in ("first", "total") for q in (50, 95)}
        for t, s in samples.items()
    }
    summary["grpc_minus_bls"] = {
        f"{kind}_50_us": summary["grpc"][f"{kind}_50_us"] - summary["bls"][f"{kind}_50_us"]
        for kind in ("first", "total")
    }
    return summary


def over_repeats(repeats: list[dict]) -> dict:
    return {
        group: {
            key: {
                "min": min(r[group][key] for r in repeats),
                "median": statistics.median(r[group][key] for r in repeats),
            }
            for key in repeats[0][group]
        }  # fmt: skip
        for group in repeats[0]
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=10, help="responses per stream")
    parser.add_argument("--chunk-samples", type=int, default=3200, help="float32 per response (200 ms at 16 kHz)")
    parser.add_argument("--rounds", type=int, default=200, help="streams of each transport per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = device_name()
    out = Path(args.out or RESULTS / f"stream_transport_{device.split(':')[0]}.json")

    work = Path(tempfile.mkdtemp(prefix="stream-transport-"))
    repo = repository(work / "repository", args.chunks, args.chunk_samples)
    with TritonServer(repo, work_dir=work / "server") as server:
        client = grpc_client(server.endpoints.grpc)
        try:
            for transport in TRANSPORTS:  # warm-up: channels, threads, first allocations
                timed(client, transport, 20)
            repeats = [one_repeat(client, args.rounds) for _ in range(args.repeats)]
        except Exception as exc:  # noqa: BLE001 - the BLS side's crash is a finding, not a bench bug
            print(f"stopped: {exc}\n{server.log_tail()}")
            return 1
        finally:
            client.close()
    summary = over_repeats(repeats)
    stable = all(r["grpc_minus_bls"]["first_50_us"] > 0 for r in repeats) or all(
        r["grpc_minus_bls"]["first_50_us"] < 0 for r in repeats
    )
    report = {
        "command": " ".join(["python", "bench/stream_transport.py", *(argv if argv is not None else sys.argv[1:])]),
        "device": device,
        "stream": {"chunks": args.chunks, "chunk_samples": args.chunk_samples, "rounds": args.rounds},
        "repeats": repeats,
        "summary": summary,
        "first_response_difference_sign_stable": stable,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    print("transport | first response p50 | first p95 | whole stream p50 | whole p95")
    print("--- | --- | --- | --- | ---")
    for t in TRANSPORTS:
        cells = [summary[t][k] for k in ("first_50_us", "first_95_us", "total_50_us", "total_95_us")]
        print(t + " | " + " | ".join(f"{c['min'] / 1000:.2f} / {c['median'] / 1000:.2f}" for c in cells))
    diff = summary["grpc_minus_bls"]
    print(f"gRPC - BLS, p50: first response {diff['first_50_us']['median'] / 1000:+.2f} ms, whole stream "
          f"{diff['total_50_us']['median'] / 1000:+.2f} ms (median over repeats; sign stable: {stable})")  # fmt: skip
    print("(min / median over the repeats; milliseconds)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
