"""A real Prometheus scrapes a real Triton under load and evaluates the shipped rules;
every recording rule and every dashboard panel query must return data.

* Triton: the tritonserver of the nvidia-pytriton wheel, started by
  ``model_repo.local_server.TritonServer`` with the production metrics flags, on a small
  Python-backend repository written by this test: a dynamically batched model (role asr),
  two streaming (decoupled) models (tts, llm; the llm one reports generated tokens through
  the Python backend's metrics API under the TensorRT-LLM backend's metric name), and a
  BLS pipeline model calling the asr one (role pipeline). Roles reach the series through
  the same relabel rules the Triton ServiceMonitor carries.
* Prometheus: ``/usr/bin/prometheus`` loading the rule files as the component renders them.
* Not real here, and served by small exposition servers named from the metric catalog:
  DCGM exporter fields (no GPU) and Triton's first-response histogram (absent from the
  Triton 2.51 available here; present in the production release). The test asserts the
  real Triton exposes every other catalogued Triton family, and that the synthetic
  servers serve none of those.
* A rule with a misspelled metric name is loaded too, and the check must single it out.
"""

from __future__ import annotations

import queue
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import yaml
from grafana_vars import expand
from monitoring_servers import ExpositionServer, PrometheusServer

from infra.monitoring import metric_catalog
from infra.monitoring.dashboards import build_dashboards, panel_queries
from infra.monitoring.monitors import TRITON_METRICS_ARGS, role_relabelings, to_prometheus_relabel_configs
from infra.monitoring.rule_files import render_rule_files
from infra.monitoring.slos import LatencySlos
from model_repo.local_server import TritonServer

pytestmark = [pytest.mark.triton, pytest.mark.prometheus]

TURN_METRICS = Path(__file__).resolve().parents[2] / "model_repo" / "python_models" / "_common" / "turn_metrics.py"
MODEL_ROLES = {"asr_tiny": "asr", "tts_stream": "tts", "llm_stream": "llm", "voice_pipeline": "pipeline"}
TOKENS_PER_REQUEST = 6
MISSPELLED_RULE = "test:misspelled_request_rate:rate5m"

BATCHED_MODEL = textwrap.dedent(
    """
    import time
    import numpy as np
    import triton_python_backend_utils as pb_utils

    class TritonPythonModel:
        def execute(self, requests):
            time.sleep(0.004)  # a few ms of "compute" per batch, so requests queue under load
            return [
                pb_utils.InferenceResponse([pb_utils.Tensor(
                    "OUT", pb_utils.get_input_tensor_by_name(r, "IN").as_numpy().sum(axis=-1, keepdims=True))])
                for r in requests
            ]
    """
)
BATCHED_CONFIG = """
name: "asr_tiny"
backend: "python"
max_batch_size: 8
dynamic_batching { max_queue_delay_microseconds: 2000 }
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""
STREAMING_MODEL = textwrap.dedent(
    """
    import time
    import numpy as np
    import triton_python_backend_utils as pb_utils

    class TritonPythonModel:
        def initialize(self, args):
            self.tokens = None
            if args["model_name"].startswith("llm"):
                # The family and labels the TensorRT-LLM backend reports generated tokens under.
                # The family must outlive its metrics, so it is kept on the model too.
                self.token_family = pb_utils.MetricFamily(
                    name="nv_llm_output_token_len",
                    description="Output tokens per finished request",
                    kind=pb_utils.MetricFamily.HISTOGRAM,
                )
                self.tokens = self.token_family.Metric(
                    labels={"model": args["model_name"], "version": args["model_version"],
                            "response_metric_type": "total_output_tokens"},
                    buckets=[10.0, 50.0, 100.0, 500.0, 1000.0],
                )

        def execute(self, requests):
            for request in requests:
                sender = request.get_response_sender()
                count = int(pb_utils.get_input_tensor_by_name(request, "N").as_numpy()[0])
                for index in range(count):
                    time.sleep(0.002)
                    sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("TOKEN", np.array([index], np.int32))]))
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                if self.tokens is not None:
                    self.tokens.observe(count)
            return None
    """
)
STREAMING_CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
model_transaction_policy {{ decoupled: true }}
input [ {{ name: "N" data_type: TYPE_INT32 dims: [ 1 ] }} ]
output [ {{ name: "TOKEN" data_type: TYPE_INT32 dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""
PIPELINE_MODEL = textwrap.dedent(
    """
    import time
    import triton_python_backend_utils as pb_utils
    from turn_metrics import TurnClock, TurnMetrics  # the platform's own module, copied beside this model

    class TritonPythonModel:
        def initialize(self, args):
            self.metrics = TurnMetrics(pb_utils, args["model_name"], pool="speech")

        def execute(self, requests):
            responses = []
            for request in requests:
                clock = TurnClock(time.monotonic())
                self.metrics.begun()
                clock.speech_ended(0.05)
                audio = pb_utils.get_input_tensor_by_name(request, "IN")
                stage = pb_utils.InferenceRequest(
                    model_name="asr_tiny", requested_output_names=["OUT"], inputs=[audio]).exec()
                if stage.has_error():
                    self.metrics.failed("asr")
                    raise pb_utils.TritonModelException(stage.error().message())
                for mark in ("transcript", "llm_request", "first_token", "tts_request", "first_audio"):
                    time.sleep(0.001)
                    clock.mark(mark)
                self.metrics.finished(clock)
                responses.append(pb_utils.InferenceResponse([pb_utils.get_output_tensor_by_name(stage, "OUT")]))
            return responses
    """
)
PIPELINE_CONFIG = """
name: "voice_pipeline"
backend: "python"
max_batch_size: 0
input [ { name: "IN" data_type: TYPE_FP32 dims: [ 1, 16 ] } ]
output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 1, 1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""


def write_repository(root: Path) -> Path:
    models = {
        "asr_tiny": (BATCHED_CONFIG, BATCHED_MODEL),
        "tts_stream": (STREAMING_CONFIG.format(name="tts_stream"), STREAMING_MODEL),
        "llm_stream": (STREAMING_CONFIG.format(name="llm_stream"), STREAMING_MODEL),
        "voice_pipeline": (PIPELINE_CONFIG, PIPELINE_MODEL),
    }
    for name, (config, source) in models.items():
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(config)
        (root / name / "1" / "model.py").write_text(source)
    (root / "voice_pipeline" / "1" / "turn_metrics.py").write_bytes(TURN_METRICS.read_bytes())
    return root


class SyntheticFirstResponses:
    """Triton's first-response histogram (Triton's default buckets), growing per scrape."""

    BUCKETS = ("100", "500", "2000", "5000", "+Inf")
    # Cumulative share of first responses within each bucket.
    SHARES = (0.5, 0.95, 1.0, 1.0, 1.0)

    def __init__(self) -> None:
        self.scrapes = 0
        self.lock = threading.Lock()

    def render(self) -> str:
        with self.lock:
            self.scrapes += 1
            total = 20 * self.scrapes
        lines = ["# TYPE nv_inference_first_response_histogram_ms histogram"]
        for model in ("llm_stream", "tts_stream"):
            for le, share in zip(self.BUCKETS, self.SHARES, strict=True):
                labels = f'model="{model}",version="1",le="{le}"'
                lines.append(f"nv_inference_first_response_histogram_ms_bucket{{{labels}}} {int(total * share)}")
            lines.append(f'nv_inference_first_response_histogram_ms_sum{{model="{model}",version="1"}} {total * 150}')
            lines.append(f'nv_inference_first_response_histogram_ms_count{{model="{model}",version="1"}} {total}')
        return "\n".join(lines) + "\n"


def synthetic_kube_state_metrics() -> str:
    """kube-state-metrics' ready replicas of the Triton Deployments (no cluster here)."""
    lines = ["# TYPE kube_deployment_status_replicas_ready gauge"]
    for pool, ready in (("speech", 2), ("llm", 1)):
        lines.append(f'kube_deployment_status_replicas_ready{{namespace="triton",deployment="triton-{pool}"}} {ready}')
    return "\n".join(lines) + "\n"


def synthetic_dcgm(node_index: int) -> str:
    """One GPU node's DCGM exporter fields, with the exporter's own labels."""
    fields = {
        "DCGM_FI_DEV_GPU_UTIL": ("gauge", (55, 85)),
        "DCGM_FI_DEV_FB_USED": ("gauge", (30000, 61000)),
        "DCGM_FI_DEV_FB_FREE": ("gauge", (51000, 20000)),
        "DCGM_FI_DEV_POWER_USAGE": ("gauge", (310.5, 402.25)),
        "DCGM_FI_DEV_GPU_TEMP": ("gauge", (58, 66)),
        "DCGM_FI_DEV_XID_ERRORS": ("gauge", (0, 0)),
    }
    lines = []
    for name, (kind, per_gpu) in fields.items():
        lines.append(f"# TYPE {name} {kind}")
        for gpu, value in enumerate(per_gpu):
            labels = (
                f'gpu="{gpu}",UUID="GPU-{node_index}-{gpu}",device="nvidia{gpu}",'
                f'modelName="NVIDIA H100 80GB HBM3",Hostname="dcgm-exporter-{node_index}"'
            )
            lines.append(f"{name}{{{labels}}} {value}")
    return "\n".join(lines) + "\n"


@dataclass
class LiveStack:
    prometheus: PrometheusServer
    triton_metrics_text: str
    synthetic_texts: list[str]
    recording_rules: list[str]


def load(endpoints: object, stop: threading.Event, errors: list[BaseException]) -> list[threading.Thread]:
    """Client threads: batched HTTP calls, BLS pipeline calls, gRPC token streams."""

    def guarded(work):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                work()
            except BaseException as error:  # noqa: BLE001 -- reported by the test
                errors.append(error)

        return run

    def batched() -> None:
        client = httpclient.InferenceServerClient(endpoints.http, concurrency=8)  # type: ignore[attr-defined]
        data = np.ones((1, 16), np.float32)
        while not stop.is_set():
            requests = []
            for _ in range(8):
                tensor = httpclient.InferInput("IN", [1, 16], "FP32")
                tensor.set_data_from_numpy(data)
                requests.append(client.async_infer("asr_tiny", [tensor]))
            for request in requests:
                request.get_result()
        client.close()

    def pipeline() -> None:
        client = httpclient.InferenceServerClient(endpoints.http)  # type: ignore[attr-defined]
        while not stop.is_set():
            tensor = httpclient.InferInput("IN", [1, 16], "FP32")
            tensor.set_data_from_numpy(np.ones((1, 16), np.float32))
            client.infer("voice_pipeline", [tensor])
        client.close()

    def streams() -> None:
        client = grpcclient.InferenceServerClient(endpoints.grpc)  # type: ignore[attr-defined]
        tokens: queue.Queue = queue.Queue()
        client.start_stream(callback=lambda result, error: tokens.put(error))
        while not stop.is_set():
            for model in ("llm_stream", "tts_stream"):
                count = grpcclient.InferInput("N", [1], "INT32")
                count.set_data_from_numpy(np.array([TOKENS_PER_REQUEST], np.int32))
                client.async_stream_infer(model, [count])
                for _ in range(TOKENS_PER_REQUEST):
                    error = tokens.get(timeout=10)
                    if error is not None:
                        raise error
        client.stop_stream()
        client.close()

    threads = [threading.Thread(target=guarded(work), daemon=True) for work in (batched, batched, pipeline, streams)]
    for thread in threads:
        thread.start()
    return threads


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    root = tmp_path_factory.mktemp("live-monitoring")
    rules_dir = root / "rules"
    rules_dir.mkdir()
    rendered = render_rule_files(LatencySlos())
    for stem, content in rendered.items():
        (rules_dir / f"{stem}.yaml").write_text(yaml.safe_dump(content, sort_keys=False))
    recording_rules = sorted(
        {r["record"] for c in rendered.values() for g in c["groups"] for r in g["rules"] if "record" in r}
    )
    # The same rule as the request rate, with the metric name misspelled: must be caught.
    misspelled = {"record": MISSPELLED_RULE, "expr": "sum by (model, role) (rate(nv_inference_request_sucess[5m]))"}
    (rules_dir / "misspelled.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "misspelled", "rules": [misspelled]}]})
    )

    role_relabel = to_prometheus_relabel_configs(role_relabelings(MODEL_ROLES))
    first_responses = SyntheticFirstResponses()
    server = TritonServer(
        write_repository(root / "repo"),
        work_dir=root / "triton",
        extra_args=list(TRITON_METRICS_ARGS),
        startup_timeout_s=90,
    )
    with (
        server,
        ExpositionServer(first_responses.render) as histogram_target,
        ExpositionServer(lambda: synthetic_dcgm(1)) as gpu_node_1,
        ExpositionServer(lambda: synthetic_dcgm(2)) as gpu_node_2,
        ExpositionServer(synthetic_kube_state_metrics) as kube_state_metrics,
    ):
        target_labels = {"namespace": "triton", "pod": "triton-local-0", "node": "local"}
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules_dir / "*.yaml")],
            "scrape_configs": [
                {
                    "job_name": "triton",
                    "static_configs": [
                        {"targets": [server.endpoints.metrics_url.split("/")[2]], "labels": target_labels}
                    ],
                    "metric_relabel_configs": role_relabel,
                },
                {
                    "job_name": "synthetic-triton-first-response",
                    "static_configs": [{"targets": [histogram_target.target], "labels": target_labels}],
                    "metric_relabel_configs": role_relabel,
                },
                {"job_name": "kube-state-metrics", "static_configs": [{"targets": [kube_state_metrics.target]}]},
                {
                    "job_name": "dcgm-exporter",
                    "static_configs": [
                        {"targets": [gpu_node_1.target], "labels": {"node": "gpu-node-1"}},
                        {"targets": [gpu_node_2.target], "labels": {"node": "gpu-node-2"}},
                    ],
                },
            ],
        }
        stop = threading.Event()
        errors: list[BaseException] = []
        with PrometheusServer(config, root / "prometheus") as prometheus:
            threads = load(server.endpoints, stop, errors)
            try:
                # Wait (bounded) until the slowest-to-appear series have data: summaries
                # need traffic, rates need two scrapes, rules one evaluation after that.
                deadline = time.monotonic() + 60
                waiting_for = ["model:triton_request_seconds:quantile", "model:triton_llm_output_tokens:rate5m"]
                while waiting_for and time.monotonic() < deadline and not errors:
                    waiting_for = [expr for expr in waiting_for if not prometheus.finite_samples(expr)]
                    time.sleep(0.5)
                time.sleep(3)  # a few more scrapes and evaluations under load
                with urllib.request.urlopen(server.endpoints.metrics_url, timeout=5) as response:
                    triton_text = response.read().decode()
                yield LiveStack(
                    prometheus=prometheus,
                    triton_metrics_text=triton_text,
                    synthetic_texts=[first_responses.render(), synthetic_dcgm(1), synthetic_kube_state_metrics()],
                    recording_rules=recording_rules,
                )
            finally:
                stop.set()
                for thread in threads:
                    thread.join(timeout=30)
        assert not errors, f"load clients failed: {errors!r}"


def families(exposition: str) -> set[str]:
    return {line.split()[2] for line in exposition.splitlines() if line.startswith("# TYPE ")}


def test_real_triton_exposes_every_catalogued_triton_family(live: LiveStack) -> None:
    exposed = families(live.triton_metrics_text)
    real = metric_catalog.TRITON_CORE | metric_catalog.TRITON_LLM | metric_catalog.VOICE_TURN
    assert exposed >= real, sorted(real - exposed)


def test_synthetic_targets_serve_only_what_no_real_server_here_can(live: LiveStack) -> None:
    served = set().union(*(families(text) for text in live.synthetic_texts))
    assert served <= metric_catalog.DCGM | metric_catalog.TRITON_FIRST_RESPONSE | metric_catalog.KUBE_STATE_METRICS
    assert served.isdisjoint(families(live.triton_metrics_text))
    assert served >= metric_catalog.DCGM


def test_every_rule_loads_and_evaluates_without_error(live: LiveStack) -> None:
    groups = live.prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {rule["name"] for rule in rules if rule["type"] == "recording"} >= set(live.recording_rules)
    broken = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert not broken, broken


def test_every_recording_rule_returns_data(live: LiveStack) -> None:
    empty = [rule for rule in [*live.recording_rules, MISSPELLED_RULE] if not live.prometheus.finite_samples(rule)]
    # Exactly the misspelled rule is caught: the check fails on a wrong metric name.
    assert empty == [MISSPELLED_RULE], f"recording rules without data: {empty}"


def test_every_dashboard_panel_query_returns_data(live: LiveStack) -> None:
    empty = [
        (uid, title, expr)
        for uid, model in build_dashboards().items()
        for title, expr in panel_queries(model)
        if not live.prometheus.finite_samples(expand(expr))
    ]
    assert not empty, f"panel queries without data: {empty}"


def test_a_misspelled_panel_query_is_caught(live: LiveStack) -> None:
    expr = expand('model:nv_inference_request_success:rate5m{model=~"$model"}')
    assert live.prometheus.finite_samples(expr)
    assert not live.prometheus.finite_samples(expr.replace("success", "sucess"))


def test_recorded_values_make_sense(live: LiveStack) -> None:
    prometheus = live.prometheus
    roles = {labels["role"] for labels, _ in prometheus.finite_samples("role:triton_request_seconds:mean5m")}
    assert roles == {"asr", "tts", "llm", "pipeline"}
    (batch,) = [
        v for labels, v in prometheus.finite_samples("model:triton_batch_size:mean5m") if labels["model"] == "asr_tiny"
    ]
    assert batch > 1.0, "dynamic batching under concurrent load should batch"
    for labels, value in prometheus.finite_samples("model:triton_queue_seconds:mean5m"):
        assert 0 <= value < 5, labels
    for labels, value in prometheus.finite_samples("model:triton_request_seconds:quantile"):
        assert 0 < value < 5, labels
    (tokens,) = prometheus.finite_samples("model:triton_llm_output_tokens:rate5m")
    (requests,) = [
        v
        for labels, v in prometheus.finite_samples("model:nv_inference_request_success:rate5m")
        if labels["model"] == "llm_stream"
    ]
    assert tokens[0]["model"] == "llm_stream" and tokens[1] == pytest.approx(TOKENS_PER_REQUEST * requests, rel=0.2)
    utilisation = dict(
        (labels["node"], v) for labels, v in prometheus.finite_samples("node:dcgm_gpu_utilization:ratio")
    )
    assert utilisation == {"gpu-node-1": 0.7, "gpu-node-2": 0.7}
