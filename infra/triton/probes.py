"""Health probes and drain timing of a Triton pod, derived from what the pool serves.

Triton reports ``/v2/health/live`` once the process runs and (with ``--strict-readiness``)
``/v2/health/ready`` only when every model is loaded. With model control ``none`` it loads the whole
repository before it opens its HTTP port, so the startup probe must outlast the slowest model load
of the pool, or the kubelet kills a pod that is still loading an LLM. Liveness and readiness start
only after the startup probe succeeded.

Drain: on deletion the kubelet runs the preStop sleep (the endpoint is removed from Services and the
NLB meanwhile, so no new request arrives), then sends SIGTERM; Triton stops accepting and waits up to
``--exit-timeout-secs`` for in-flight requests. The grace period covers both plus a margin, so the
kubelet never SIGKILLs a server that is still draining.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from platform_spec.serving import PoolServing

# Worst-case load seconds per role: S3 download into the pod, then deserialize/initialize, on the
# slowest instance type of the stacks. LLM: ~9 GB FP8 checkpoint (16 GB BF16) at ~150 MB/s plus
# TensorRT-LLM's PyTorch-backend init, KV-cache allocation and CUDA-graph capture (minutes).
# TensorRT plans deserialize in seconds; Python pre/post models start a stub process each.
LOAD_SECONDS: dict[str, int] = {
    "llm": 900,
    "asr": 180,
    "tts": 180,
    "embed": 120,
    "retriever": 120,
    "vad": 60,
    "anc": 60,
    "pipeline": 60,
}
STARTUP_PERIOD_S = 10
SAFETY = 1.25  # headroom over the estimate: a slow S3 read must not turn into a restart loop
GRACE_MARGIN_S = 15
HTTP_PORT_NAME = "http"


def startup_budget_s(roles: Iterable[str], pool: PoolServing) -> int:
    """Seconds the startup probe allows: the pool's setting, or the slowest role's load x SAFETY."""
    if pool.startup_budget_s is not None:
        return pool.startup_budget_s
    roles = list(roles)
    unknown = sorted(set(roles) - set(LOAD_SECONDS))
    if unknown:
        raise ValueError(f"roles {unknown} have no load-time estimate; add them to LOAD_SECONDS or set startupBudgetS")
    return math.ceil(max(LOAD_SECONDS[r] for r in roles) * SAFETY)


def startup_probe(budget_s: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/v2/health/ready", "port": HTTP_PORT_NAME},
        "periodSeconds": STARTUP_PERIOD_S,
        "timeoutSeconds": 5,
        "failureThreshold": math.ceil(budget_s / STARTUP_PERIOD_S),
    }


def readiness_probe() -> dict[str, Any]:
    # Ready only while every model is ready: a model that fails later takes the pod out of Services.
    return {
        "httpGet": {"path": "/v2/health/ready", "port": HTTP_PORT_NAME},
        "periodSeconds": 5,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
        "successThreshold": 1,
    }


def liveness_probe() -> dict[str, Any]:
    # A minute of silence before a restart: a saturated server answers health checks late, and a
    # restart would cost a full model load.
    return {
        "httpGet": {"path": "/v2/health/live", "port": HTTP_PORT_NAME},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 6,
    }


def termination_grace_period_s(pool: PoolServing, pre_stop_sleep_s: int) -> int:
    return pre_stop_sleep_s + pool.exit_timeout_s + GRACE_MARGIN_S
