"""Stack variants: the internal NLB, and inputs that must stop the program before anything is declared
for Triton (a missing engine, a GPU that cannot run a model's precision)."""

from __future__ import annotations

from infra.triton.component import TritonConfigError
from infra.triton.publication import PublicationError
from tests.pulumi_harness import kubernetes_manifest
from tests.triton.conftest import run_triton_stack


def _triton_registrations(run):
    # Children of the TritonPlatform component (their URNs carry its type).
    return [r for r in run.registrations if "platform:triton:TritonPlatform$" in r.urn]


def test_internal_nlb_exposes_http_and_grpc_to_the_vpc_only(triton_build_root):
    run = run_triton_stack("prod", triton_build_root, overrides={"internal_nlb": True})
    run.raise_error()
    services = [kubernetes_manifest(r) for r in run.of_type("kubernetes:core/v1:Service")]
    nlbs = [s for s in services if s["spec"].get("type") == "LoadBalancer"]
    assert {s["metadata"]["name"] for s in nlbs} == {"triton-llm-nlb", "triton-speech-nlb"}
    for nlb in nlbs:
        annotations = nlb["metadata"]["annotations"]
        assert annotations["service.beta.kubernetes.io/aws-load-balancer-internal"] == "true"
        assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
        assert {p["port"] for p in nlb["spec"]["ports"]} == {8000, 8001}  # metrics stay in-cluster
        assert nlb["spec"]["loadBalancerSourceRanges"] == ["10.30.0.0/16"]
        assert nlb["metadata"]["labels"]["app.kubernetes.io/name"] != "triton"  # never scraped twice
    policy = next(kubernetes_manifest(r) for r in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                  if r.inputs["metadata"]["name"] == "triton-serving")  # fmt: skip
    assert {"ipBlock": {"cidr": "10.30.0.0/16"}} in policy["spec"]["ingress"][0]["from"]
    assert set(run.outputs["tritonEndpoints"]["llm"]) == {"http", "grpc", "nlbHttp", "nlbGrpc"}


def test_a_missing_engine_stops_the_program_naming_pool_model_and_fix(triton_build_root):
    run = run_triton_stack("dev", triton_build_root, drop_engines={("speech", "asr_encoder")})
    assert isinstance(run.error, PublicationError)
    message = str(run.error)
    assert "pool speech: model 'asr_encoder' needs the tensorrt-engine of 'asr_encoder'" in message
    assert "declare one per enabled model per GPU pool" in message
    assert _triton_registrations(run) == []


def test_fp8_llm_on_a_gpu_without_fp8_fails_before_any_triton_resource(triton_build_root):
    pools = [
        {"name": "llm", "role": "llm", "instanceTypes": ["g5.2xlarge"], "gpuSku": "a10g", "minSize": 0, "maxSize": 2,
         "desiredSize": 1},
        {"name": "speech", "role": "speech", "instanceTypes": ["g6.xlarge"], "gpuSku": "l4", "minSize": 0,
         "maxSize": 2, "desiredSize": 1},
    ]  # fmt: skip
    run = run_triton_stack("dev", triton_build_root, config_changes={"triton-platform:gpuPools": pools})
    assert isinstance(run.error, TritonConfigError)
    assert "gpuPools[llm]: model 'llm_chat': precision fp8 needs FP8 tensor cores, which a10g lacks" in str(run.error)
    assert _triton_registrations(run) == []

    bf16 = {"llm_chat": {"precision": "bf16"}, "llm_support": {"precision": "bf16"}}
    run = run_triton_stack(
        "dev", triton_build_root, config_changes={"triton-platform:gpuPools": pools, "triton-platform:models": bf16}
    )
    run.raise_error()


def test_a_pool_without_models_fails_before_any_triton_resource(triton_build_root):
    run = run_triton_stack("dev", triton_build_root, config_changes={"triton-platform:models": {
        name: {"enabled": False} for name in ("llm_chat", "llm_support", "voice_pipeline")}})  # fmt: skip
    assert isinstance(run.error, TritonConfigError)
    assert "GPU pool 'llm' (role llm) serves no enabled model" in str(run.error)
    assert _triton_registrations(run) == []
