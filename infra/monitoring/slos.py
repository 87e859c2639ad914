"""The latency thresholds the alert rules compare against, derived from the catalog's SLOs.

Not stack config (``MonitoringSettings`` is, in ``platform_spec.settings``): the program derives
``LatencySlos`` from the selected models once, in the stack plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields


class MonitoringSettingsError(ValueError):
    """A monitoring argument is invalid; the message names it, its value and the fix."""


def _fail(key: str, value: object, allowed: str) -> MonitoringSettingsError:
    return MonitoringSettingsError(f"monitoring setting {key}={value!r} is invalid: {allowed}")


@dataclass(frozen=True)
class LatencySlos:
    """Alert thresholds in seconds, per role of the voice pipeline.

    ASR answers whole requests: ``asr_p99_seconds`` bounds its p99 request latency
    (worst pod). TTS and the LLMs stream their answers (decoupled models):
    ``tts_p99_seconds`` bounds the p99 time to the first audio chunk and
    ``llm_p99_seconds`` the p99 time to the first token, the latencies a caller
    hears. ``queue_seconds`` bounds the request-weighted mean time any model's
    requests wait in Triton's queue. The defaults equal ``rules/slo.yaml``.
    """

    asr_p99_seconds: float = 0.15
    tts_p99_seconds: float = 0.15
    llm_p99_seconds: float = 0.4
    queue_seconds: float = 0.05

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise _fail(f"slos.{field.name}", value, "use a positive number of seconds, e.g. 0.5")
