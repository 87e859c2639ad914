"""Small Python-backend models and the Deployment's serving flags, shared by the real-Triton tests."""

from __future__ import annotations

from pathlib import Path

from infra.triton.deployment import triton_args
from platform_spec.serving import PoolServing

FIXTURES = Path(__file__).parent / "fixtures"
AUDIO = (
    'input [ { name: "AUDIO" data_type: TYPE_FP32 dims: [ -1 ] }, '
    '{ name: "SAMPLE_RATE" data_type: TYPE_INT32 dims: [ 1 ] } ]'
)
CONFIGS = {
    "vad_like": f"""backend: "python" max_batch_size: 0 {AUDIO}
        output [ {{ name: "SPEECH_PROBS" data_type: TYPE_FP32 dims: [ -1 ] }} ]
        parameters {{ key: "behaviour" value: {{ string_value: "probs" }} }}""",
    "wrong_vad": f"""backend: "python" max_batch_size: 0 {AUDIO}
        output [ {{ name: "SPEECH_PROBS" data_type: TYPE_FP32 dims: [ -1 ] }} ]
        parameters {{ key: "behaviour" value: {{ string_value: "bad_probs" }} }}""",
    "embed_like": """backend: "python" max_batch_size: 4 dynamic_batching { }
        input [ { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] } ]
        output [ { name: "EMBEDDING" data_type: TYPE_FP32 dims: [ 8 ] } ]
        parameters { key: "behaviour" value: { string_value: "embed" } }""",
    "llm_like": """backend: "python" max_batch_size: 0 model_transaction_policy { decoupled: true }
        input [ { name: "TEXT_INPUT" data_type: TYPE_STRING dims: [ 1 ] },
                { name: "MAX_TOKENS" data_type: TYPE_INT32 dims: [ 1 ] optional: true } ]
        output [ { name: "TEXT_OUTPUT" data_type: TYPE_STRING dims: [ 1 ] } ]
        parameters { key: "behaviour" value: { string_value: "stream" } }""",
    "never_loaded": f"""backend: "python" max_batch_size: 0 {AUDIO}
        output [ {{ name: "SPEECH_PROBS" data_type: TYPE_FP32 dims: [ -1 ] }} ]
        parameters {{ key: "behaviour" value: {{ string_value: "probs" }} }}""",
}
SERVED = ["vad_like", "wrong_vad", "embed_like", "llm_like"]
# Flags the local server sets itself (ports, repository, mode, readiness, drain) are left to it.
SET_BY_LOCAL_SERVER = ("--model-repository", "--model-control-mode", "--strict-readiness", "--exit-on-error",
                        "--exit-timeout-secs", "--http-port", "--grpc-port", "--metrics-port", "--allow-metrics",
                        "--allow-cpu-metrics")  # fmt: skip


def serving_flags() -> list[str]:
    serving = PoolServing(1, 1, 20, cpu="1", memory="1Gi", ephemeral_storage="1Gi")
    args = triton_args("s3://bucket/triton-repositories/v/speech", serving)
    return [a for a in args if isinstance(a, str)]
