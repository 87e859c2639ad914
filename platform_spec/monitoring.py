"""The stack config's ``monitoring`` object: Prometheus retention and volume, Alertmanager's receivers,
Grafana's exposure. Validated with the rest of the config (``platform_spec.settings``)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from platform_spec.config_model import ConfigModel

# Prometheus' duration syntax for --storage.tsdb.retention.time, largest unit first.
_DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
# The prometheus-operator's ByteSize pattern for retentionSize.
_BYTE_SIZE = re.compile(r"^(?P<number>[0-9]*\.?[0-9]+)(?P<unit>(K|M|G|T|P|E)?i?B)$")
_UNIT_BYTES = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_BINARY_UNIT_BYTES = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50, "E": 2**60}
# DNS-1123 subdomain: names of Secrets and StorageClasses.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Prometheus needs headroom above retentionSize on its volume: the write-ahead log and compaction
# are not counted in retentionSize.
_MAX_RETENTION_SHARE_OF_VOLUME = 0.9


def byte_size(value: str) -> float:
    """Bytes in a Prometheus byte size such as ``45GB`` or ``40GiB``."""
    match = _BYTE_SIZE.match(value)
    if match is None:
        raise ValueError(value)
    unit = match["unit"]
    prefix = unit[0] if unit[0] in _UNIT_BYTES and unit != "B" else ""
    scale = _BINARY_UNIT_BYTES[prefix] if "i" in unit else _UNIT_BYTES[prefix]
    return float(match["number"]) * scale


# Histogram buckets (seconds) of the voice pipeline's per-turn metrics, 10 ms to 5 s. The pipeline's
# model_repo/python_models/_common/turn_metrics.py holds the same tuple (it runs inside Triton, where this package
# is not importable); a test keeps them equal. A time-to-first-audio target must be one of them: the SLO counts
# the turns in the target's bucket.
VOICE_TURN_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0,
                      2.5, 3.0, 4.0, 5.0)  # fmt: skip


class VoiceSlo(ConfigModel):
    """The voice product's objectives, what callers feel (``monitoring.voiceSlo``).

    time_to_first_audio_seconds: end of speech to the first audio of the answer, met by
    ``time_to_first_audio_objective`` of the turns (0.95: the p95); ``turn_success_objective``: the share of turns
    that end without an error. Each becomes an error budget with multiwindow burn-rate alerts.
    """

    time_to_first_audio_seconds: float = 0.8
    time_to_first_audio_objective: float = 0.95
    turn_success_objective: float = 0.995

    @field_validator("time_to_first_audio_seconds", mode="before")
    @classmethod
    def _bucket(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or float(value) not in VOICE_TURN_BUCKETS:
            raise ValueError(
                f"timeToFirstAudioSeconds={value!r} is invalid: use one of the turn histogram's bucket bounds "
                f"{list(VOICE_TURN_BUCKETS)} (the SLO counts the turns within that bucket)"
            )
        return float(value)

    @field_validator("time_to_first_audio_objective", "turn_success_objective", mode="before")
    @classmethod
    def _objective(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.5 <= float(value) <= 0.9999:
            raise ValueError(
                f"{info.field_name}={value!r} is invalid: use a share of turns in [0.5, 0.9999], e.g. 0.95"
            )
        return float(value)


class MonitoringSettings(ConfigModel):
    """What a stack decides about its monitoring (kube-prometheus-stack).

    retention / retention_size: how long and how much Prometheus keeps (whichever limit is reached
    first); storage_gib / storage_class: Prometheus' persistent volume; alertmanager_config_secret:
    an existing Secret (key ``alertmanager.yaml``) in the monitoring namespace holding Alertmanager's
    receivers, or None for the chart's default configuration, which routes every alert to a receiver
    that drops it; expose_grafana: put Grafana behind an internal AWS load balancer; voice_slo: the voice turn's
    objectives (``VoiceSlo``), from which the burn-rate alerts and the speech pool's autoscaling target come.
    """

    retention: str = "15d"
    retention_size: str = "45GB"
    storage_gib: int = 50
    storage_class: str = "gp3"
    alertmanager_config_secret: str | None = None
    expose_grafana: bool = False
    # Prometheus and Alertmanager pods: 2 in prod, so a node drain or a crash loses neither scraping nor alerting.
    replicas: int = Field(default=1, ge=1, le=3)
    prometheus_memory: str = Field(default="4Gi", pattern=r"^[0-9]+(Mi|Gi)$")
    voice_slo: VoiceSlo = VoiceSlo()

    @field_validator("retention", mode="before")
    @classmethod
    def _retention(cls, value: Any) -> Any:
        if not isinstance(value, str) or not value or not _DURATION.match(value):
            raise ValueError(f"retention={value!r} is invalid: use a Prometheus duration such as '15d', '12h' or '2w'")
        return value

    @field_validator("retention_size", mode="before")
    @classmethod
    def _retention_size(cls, value: Any) -> Any:
        if not isinstance(value, str) or not _BYTE_SIZE.match(value):
            raise ValueError(f"retention_size={value!r} is invalid: use a size such as '45GB' or '40GiB'")
        return value

    @field_validator("storage_gib", mode="before")
    @classmethod
    def _storage_gib(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"storage_gib={value!r} is invalid: use a whole number of GiB, at least 1")
        return value

    @field_validator("storage_class", "alertmanager_config_secret", mode="before")
    @classmethod
    def _object_name(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name == "alertmanager_config_secret":
            return value
        if not isinstance(value, str) or not _DNS_SUBDOMAIN.match(value):
            raise ValueError(f"{info.field_name}={value!r} is invalid: use the name of an existing object (DNS-1123)")
        return value

    @field_validator("expose_grafana", mode="before")
    @classmethod
    def _boolean(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"expose_grafana={value!r} is invalid: use true or false")
        return value

    @model_validator(mode="after")
    def _retention_fits_volume(self) -> MonitoringSettings:
        volume_bytes = self.storage_gib * 2**30
        if byte_size(self.retention_size) > _MAX_RETENTION_SHARE_OF_VOLUME * volume_bytes:
            raise ValueError(
                f"retention_size={self.retention_size!r} is invalid: it must stay under "
                f"{int(_MAX_RETENTION_SHARE_OF_VOLUME * 100)}% of the {self.storage_gib} GiB volume (storage_gib) "
                "so the write-ahead log fits; lower retentionSize or raise storageGib"
            )
        return self
