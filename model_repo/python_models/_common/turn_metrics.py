"""What a caller feels of a voice turn, as Triton custom metrics (the Python backend's ``pb_utils.MetricFamily``),
exported on the server's metrics port beside Triton's own series and scraped by the same ServiceMonitor.

The clock starts at the **end of speech**: when the pipeline's instance took the request up, less the trailing silence
VAD found after the last speech (the caller's endpointer waited that long before it sent the utterance). A request
that waited in Triton's queue for a busy pipeline instance waited before that: the Python backend gives a model no
arrival time, so that wait is Triton's ``nv_inference_queue_duration_us{model="voice_pipeline"}``, shown on top of
the waterfall in the dashboard and a trigger of the pool's autoscaling (queue time). Marks along the turn:

    end of speech -> transcript -> LLM request -> first token -> first phrase to TTS -> first audio chunk -> final

Histograms (seconds, buckets ``BUCKETS``: 10 ms to 5 s), labelled ``pipeline`` (the model) and ``pool`` (the GPU
pool, ``PLATFORM_POOL`` in the pod; ``local`` elsewhere), never by call or user:
- ``voice_turn_asr_final_seconds``: end of speech -> final transcript (denoising, VAD and ASR);
- ``voice_turn_stage_seconds{stage}``: the waterfall, whose stages add up to the time to first audio:
  ``asr`` (end of speech -> transcript), ``retrieval`` (-> LLM request), ``llm_first_token``, ``first_phrase``
  (first token -> the first phrase handed to TTS), ``tts_first_audio`` (TTS request -> its first chunk);
- ``voice_turn_time_to_first_audio_seconds``: end of speech -> first audio chunk sent to the caller;
- ``voice_turn_duration_seconds``: end of speech -> the final response.
Counters: ``voice_turns_total`` (every turn begun), ``voice_turn_cancels_total`` (the caller cancelled or barged
in), ``voice_turn_failures_total{stage}`` (the stage whose error ended the turn: a model role, ``request`` for bad
input, ``pipeline`` for the pipeline's own code).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0,
           4.0, 5.0)  # fmt: skip
STAGES = ("asr", "retrieval", "llm_first_token", "first_phrase", "tts_first_audio")
# Where a turn can fail: the request itself, the pipeline's own code, and each model role it calls.
FAILURE_STAGES = ("request", "pipeline", "anc", "vad", "asr", "embed", "retriever", "llm", "tts")
POOL_ENV = "PLATFORM_POOL"

HISTOGRAMS = {
    "voice_turn_asr_final_seconds": "Voice turn: end of speech to the final transcript (ANC, VAD, ASR)",
    "voice_turn_stage_seconds": "Voice turn waterfall: seconds per stage; the stages add up to the time to first audio",
    "voice_turn_time_to_first_audio_seconds": "Voice turn: end of speech to the first audio chunk sent to the caller",
    "voice_turn_duration_seconds": "Voice turn: end of speech to the final response",
}
COUNTERS = {
    "voice_turns_total": "Voice turns begun",
    "voice_turn_cancels_total": "Voice turns the caller cancelled (barge-in) before the answer ended",
    "voice_turn_failures_total": "Voice turns ended by an error, by the stage that failed",
}


@dataclass
class TurnClock:
    """The marks of one turn (``time.monotonic`` seconds); ``stage`` is where the turn is now, for failures."""

    arrived: float
    end_of_speech: float | None = None
    stage: str = "request"
    marks: dict[str, float] = field(default_factory=dict)

    def speech_ended(self, trailing_silence_s: float) -> None:
        self.end_of_speech = self.arrived - max(0.0, trailing_silence_s)

    def mark(self, name: str, now: float | None = None) -> None:
        """Record ``name`` the first time only (the first token, the first audio chunk)."""
        self.marks.setdefault(name, time.monotonic() if now is None else now)

    def stage_seconds(self) -> dict[str, float]:
        """The waterfall stages the turn got through."""
        points = [("end_of_speech", self.end_of_speech), *((n, self.marks.get(n)) for n in _MARKS)]
        out = {}
        for stage, (start, end) in zip(STAGES, zip(points, points[1:], strict=False), strict=True):
            if start[1] is None or end[1] is None:
                break
            out[stage] = end[1] - start[1]
        return out


# The mark that ends each stage, in STAGES order.
_MARKS = ("transcript", "llm_request", "first_token", "tts_request", "first_audio")


class TurnMetrics:
    """The metric families, created once per model instance, and the observations of finished turns."""

    def __init__(self, pb_utils: Any, pipeline: str, pool: str | None = None) -> None:
        pool = pool or os.environ.get(POOL_ENV) or "local"
        self.labels = {"pipeline": pipeline, "pool": pool}
        family = pb_utils.MetricFamily
        self._histograms = {
            name: family(name=name, description=text, kind=family.HISTOGRAM) for name, text in HISTOGRAMS.items()
        }
        self._counters = {
            name: family(name=name, description=text, kind=family.COUNTER) for name, text in COUNTERS.items()
        }
        self._metrics: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
        # Counters exist at 0 from the start: a failure ratio is 0, not absent, until something fails.
        for name in ("voice_turns_total", "voice_turn_cancels_total"):
            self._metric(name)
        for stage in FAILURE_STAGES:
            self._metric("voice_turn_failures_total", stage=stage)

    def _metric(self, name: str, **extra: str) -> Any:
        labels = {**self.labels, **extra}
        key = (name, tuple(sorted(labels.items())))
        if key not in self._metrics:
            if name in self._histograms:
                self._metrics[key] = self._histograms[name].Metric(labels=labels, buckets=list(BUCKETS))
            else:
                self._metrics[key] = self._counters[name].Metric(labels=labels)
        return self._metrics[key]

    def begun(self) -> None:
        self._metric("voice_turns_total").increment(1)

    def cancelled(self) -> None:
        self._metric("voice_turn_cancels_total").increment(1)

    def failed(self, stage: str) -> None:
        self._metric("voice_turn_failures_total", stage=stage).increment(1)

    def finished(self, clock: TurnClock, now: Callable[[], float] = time.monotonic) -> None:
        """Observe a completed turn (also one that ended early: no speech, or cancelled)."""
        if clock.end_of_speech is None:
            return
        if "transcript" in clock.marks:
            self._metric("voice_turn_asr_final_seconds").observe(clock.marks["transcript"] - clock.end_of_speech)
        for stage, seconds in clock.stage_seconds().items():
            self._metric("voice_turn_stage_seconds", stage=stage).observe(seconds)
        if "first_audio" in clock.marks:
            self._metric("voice_turn_time_to_first_audio_seconds").observe(
                clock.marks["first_audio"] - clock.end_of_speech
            )
        self._metric("voice_turn_duration_seconds").observe(now() - clock.end_of_speech)
