"""Typed settings of the monitoring stack, validated when constructed.

``MonitoringSettings`` sizes and secures the kube-prometheus-stack release;
``LatencySlos`` holds the thresholds the alert rules compare against. Both fail at
construction with a message naming the setting, the value and what is allowed, so a
bad stack config stops before any resource is declared.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

# Prometheus' duration syntax for --storage.tsdb.retention.time, largest unit first.
_DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
# The prometheus-operator's ByteSize pattern for retentionSize.
_BYTE_SIZE = re.compile(r"^(?P<number>[0-9]*\.?[0-9]+)(?P<unit>(K|M|G|T|P|E)?i?B)$")
_UNIT_BYTES = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_BINARY_UNIT_BYTES = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50, "E": 2**60}
# DNS-1123 subdomain: names of Secrets and StorageClasses.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

# Prometheus needs headroom above retentionSize on its volume: the write-ahead log and
# compaction are not counted in retentionSize.
_MAX_RETENTION_SHARE_OF_VOLUME = 0.9


class MonitoringSettingsError(ValueError):
    """A monitoring setting is invalid; the message names it, its value and the fix."""


def _fail(key: str, value: object, allowed: str) -> MonitoringSettingsError:
    return MonitoringSettingsError(f"monitoring setting {key}={value!r} is invalid: {allowed}")


def byte_size(value: str) -> float:
    """Bytes in a Prometheus byte size such as ``45GB`` or ``40GiB``."""
    match = _BYTE_SIZE.match(value)
    if match is None:
        raise ValueError(value)
    unit = match["unit"]
    prefix = unit[0] if unit[0] in _UNIT_BYTES and unit != "B" else ""
    scale = _BINARY_UNIT_BYTES[prefix] if "i" in unit else _UNIT_BYTES[prefix]
    return float(match["number"]) * scale


@dataclass(frozen=True)
class MonitoringSettings:
    """What a stack decides about its monitoring.

    retention / retention_size: how long and how much Prometheus keeps (whichever
    limit is reached first); storage_gib / storage_class: Prometheus' persistent
    volume; alertmanager_config_secret: an existing Secret (key ``alertmanager.yaml``)
    in the monitoring namespace holding Alertmanager's receivers, or None for the
    chart's default configuration, which routes every alert to a receiver that drops
    it; expose_grafana: put Grafana behind an internal AWS load balancer.
    """

    retention: str = "15d"
    retention_size: str = "45GB"
    storage_gib: int = 50
    storage_class: str = "gp3"
    alertmanager_config_secret: str | None = None
    expose_grafana: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.retention, str) or not self.retention or not _DURATION.match(self.retention):
            raise _fail("retention", self.retention, "use a Prometheus duration such as '15d', '12h' or '2w'")
        if not isinstance(self.retention_size, str) or not _BYTE_SIZE.match(self.retention_size):
            raise _fail("retention_size", self.retention_size, "use a size such as '45GB' or '40GiB'")
        if isinstance(self.storage_gib, bool) or not isinstance(self.storage_gib, int) or self.storage_gib < 1:
            raise _fail("storage_gib", self.storage_gib, "use a whole number of GiB, at least 1")
        volume_bytes = self.storage_gib * 2**30
        if byte_size(self.retention_size) > _MAX_RETENTION_SHARE_OF_VOLUME * volume_bytes:
            raise _fail(
                "retention_size",
                self.retention_size,
                f"it must stay under {int(_MAX_RETENTION_SHARE_OF_VOLUME * 100)}% of the "
                f"{self.storage_gib} GiB volume (storage_gib) so the write-ahead log fits; "
                "lower retention_size or raise storage_gib",
            )
        if not isinstance(self.storage_class, str) or not _DNS_SUBDOMAIN.match(self.storage_class):
            raise _fail("storage_class", self.storage_class, "use the name of a StorageClass, e.g. 'gp3'")
        secret = self.alertmanager_config_secret
        if secret is not None and (not isinstance(secret, str) or not _DNS_SUBDOMAIN.match(secret)):
            raise _fail("alertmanager_config_secret", secret, "use the name of an existing Secret, or leave it unset")
        if not isinstance(self.expose_grafana, bool):
            raise _fail("expose_grafana", self.expose_grafana, "use true or false")


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
