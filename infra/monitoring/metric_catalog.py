"""Every scraped metric the rules and dashboards depend on, with where its name comes from.

A misspelled metric name makes a panel show "No data" and an alert never fire, silently.
The tests therefore check that every metric a rule or panel reads is listed here, and
that every Triton name listed here is really exposed by a running tritonserver.

Sources:

* ``TRITON_CORE``: exposed by tritonserver itself (2.51 from the nvidia-pytriton wheel,
  the version our tests run; unchanged in the 2.62 production image). The ``*_summary_us``
  families need ``--metrics-config summary_latencies=true``.
* ``TRITON_FIRST_RESPONSE``: Triton's first-response histogram of decoupled models, enabled
  by ``--metrics-config histogram_latencies=true`` in the production release; the 2.51
  server available to our tests predates it (the binary has no such family), so the tests
  serve it from a synthetic target instead and say so.
* ``TRITON_LLM``: custom metrics the TensorRT-LLM backend reports through Triton (and the
  CPU LLM model reports the same way, through the Python backend's metrics API).
* ``DCGM``: fields of the DCGM exporter's default counter set (etc/default-counters.csv of
  NVIDIA/dcgm-exporter) that the rules use. No GPU here: the tests serve them from a
  synthetic exporter, named from this list.
* ``VOICE_TURN``: the voice pipeline's per-turn metrics, reported through the Python backend's metrics API
  (``model_repo/python_models/_common/turn_metrics.py``).
* ``KUBE_STATE_METRICS`` and ``PROMETHEUS``: from kube-prometheus-stack's kube-state-metrics
  and Prometheus itself.
"""

from __future__ import annotations

TRITON_CORE = frozenset(
    {
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_compute_output_duration_us",
        "nv_inference_pending_request_count",
        "nv_inference_request_summary_us",
        "nv_inference_queue_summary_us",
        "nv_inference_compute_infer_summary_us",
    }
)
TRITON_FIRST_RESPONSE = frozenset({"nv_inference_first_response_histogram_ms"})
TRITON_LLM = frozenset({"nv_llm_output_token_len"})
DCGM = frozenset(
    {
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_GPU_TEMP",
    }
)
VOICE_TURN = frozenset(
    {
        "voice_turn_asr_final_seconds",
        "voice_turn_stage_seconds",
        "voice_turn_time_to_first_audio_seconds",
        "voice_turn_duration_seconds",
        "voice_turns_total",
        "voice_turn_cancels_total",
        "voice_turn_failures_total",
    }
)
KUBE_STATE_METRICS = frozenset(
    {"kube_pod_status_ready", "kube_pod_container_status_restarts_total", "kube_deployment_status_replicas_ready"}
)
PROMETHEUS = frozenset({"up"})

ALL = TRITON_CORE | TRITON_FIRST_RESPONSE | TRITON_LLM | VOICE_TURN | DCGM | KUBE_STATE_METRICS | PROMETHEUS

# Series suffixes of histograms and summaries: nv_llm_output_token_len_sum belongs to
# the family nv_llm_output_token_len.
_FAMILY_SUFFIXES = ("_bucket", "_sum", "_count")


def family(series_name: str) -> str:
    """The metric family a series name belongs to (strips histogram/summary suffixes)."""
    if series_name in ALL:
        return series_name
    for suffix in _FAMILY_SUFFIXES:
        if series_name.endswith(suffix) and series_name[: -len(suffix)] in ALL:
            return series_name[: -len(suffix)]
    return series_name
