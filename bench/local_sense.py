"""Does the local (cpu) platform speak sense? Word error rates, on-topic answers and time to first audio.

Questions whose answers are in the knowledge base are spoken by espeak-ng (clean, and with the white noise the local
run mixes in), each sent through ``voice_pipeline`` on the real Triton serving the cpu repository. Per turn: the
transcript's word error rate against the question (and the ASR's, called directly on the same audio), whether the
reply carries the retrieved passage's key term, the reply audio transcribed back by the same ASR against the reply
text, and the time to first audio. Every condition runs ``--repeats`` times (min / median over the repeats).

    python bench/local_sense.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from local import triton_calls  # noqa: E402
from local.speech_sample import speech_sample  # noqa: E402
from local.stats import percentile  # noqa: E402
from local.voice_turn import asr_transcript, pipeline_turn  # noqa: E402
from local.wer import word_error_rate  # noqa: E402
from model_repo import catalog  # noqa: E402
from model_repo.local_server import TritonServer  # noqa: E402
from model_repo.render import render_repository  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# (question, terms of the knowledge-base passage that answers it)
QUESTIONS = [
    ("How do I reset my password?", ("forgot", "sign-in", "reset link")),
    ("How do I change the email address of my account?", ("settings", "confirmation")),
    ("How do I turn on two-step verification?", ("settings, security", "authenticator", "security")),
    ("How long does the headset battery last?", ("eight hours", "two hours", "10 percent")),
    ("How do I export my data?", ("settings, privacy", "download link", "48 hours")),
]
CONDITIONS = {"clean": 0.0, "white noise 0.01": 0.01}


def one_pass(client, noise: float, max_tokens: int) -> dict[str, Any]:
    rows = []
    for question, terms in QUESTIONS:
        audio = speech_sample(question, lead_silence_s=0.5, tail_silence_s=0.5, white_noise=noise).noisy
        chunks: list = []
        turn = pipeline_turn(client, "voice_pipeline", audio, max_tokens, reply_audio=chunks)
        reply_audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        heard_back = asr_transcript(client, "asr", reply_audio) if reply_audio.size >= 1_600 else ""
        direct = asr_transcript(client, "asr", audio)
        rows.append({
            "question": question,
            "transcript": turn.transcript,
            "direct_transcript": direct,
            "answer": turn.answer,
            "answer_heard_back": heard_back,
            "wer_pipeline": word_error_rate(question, turn.transcript),
            "wer_direct": word_error_rate(question, direct),
            "wer_round_trip": word_error_rate(turn.answer, heard_back),
            "on_topic": any(t in turn.answer.lower() for t in terms),
            "first_audio_ms": turn.first_audio_ms,
        })  # fmt: skip
    ttfa = [r["first_audio_ms"] for r in rows if r["first_audio_ms"] is not None]
    return {
        "turns": rows,
        "wer_pipeline": statistics.mean(r["wer_pipeline"] for r in rows),
        "wer_direct": statistics.mean(r["wer_direct"] for r in rows),
        "wer_round_trip": statistics.mean(r["wer_round_trip"] for r in rows),
        "on_topic_share": sum(r["on_topic"] for r in rows) / len(rows),
        "first_audio_p50_ms": percentile(ttfa, 50) if ttfa else None,
        "first_audio_p95_ms": percentile(ttfa, 95) if ttfa else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--out", default=str(RESULTS / "local_sense_cpu.json"))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="local-sense-"))
    rendered = render_repository(catalog.select({}), "cpu", work / "repository")
    report: dict[str, Any] = {
        "command": " ".join(["python", "bench/local_sense.py", *(argv if argv is not None else sys.argv[1:])]),
        "models": {n: catalog.CATALOG[n].target("cpu").weights for n in ("asr", "llm_chat", "tts")},
        "conditions": {},
    }
    keys = (
        "wer_pipeline",
        "wer_direct",
        "wer_round_trip",
        "on_topic_share",
        "first_audio_p50_ms",
        "first_audio_p95_ms",
    )
    with TritonServer(rendered.out, work_dir=work / "server", startup_timeout_s=600) as server:
        client = triton_calls.grpc_client(server.endpoints.grpc)
        try:
            pipeline_turn(client, "voice_pipeline", speech_sample("Hello.").noisy, 8)  # warm-up, not counted
            for name, noise in CONDITIONS.items():
                runs = [one_pass(client, noise, args.max_tokens) for _ in range(args.repeats)]
                summary = {k: {"min": min(r[k] for r in runs), "median": statistics.median(r[k] for r in runs)}
                           for k in keys}  # fmt: skip
                report["conditions"][name] = {"summary": summary, "runs": runs}
        finally:
            client.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print("condition | WER pipeline | WER ASR direct | WER reply round trip | on topic | TTFA p50 ms | TTFA p95 ms")
    for name, condition in report["conditions"].items():
        s = condition["summary"]
        cells = [f"{s[k]['min']:.2f} / {s[k]['median']:.2f}" for k in keys[:4]]
        cells += [f"{s[k]['min']:.0f} / {s[k]['median']:.0f}" for k in keys[4:]]
        print(f"{name} | " + " | ".join(cells))
    print(f"(min / median over {args.repeats} repeats of {len(QUESTIONS)} questions); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
