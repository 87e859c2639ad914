"""Stack variants: the internal NLB, and inputs that must stop the program before anything is declared
for Triton (a missing engine, a GPU that cannot run a model's precision)."""

from __future__ import annotations

from infra.stack_plan import TritonConfigError
from infra.triton.publication import PublicationError
from tests.pulumi_harness import kubernetes_manifest
from tests.triton.conftest import run_triton_stack


def _triton_registrations(run):
    # Children of the TritonPlatform component (their URNs carry its type).
    return [r for r in run.registrations if "platform:triton:TritonPlatform$" in r.urn]


def test_internal_nlb_exposes_http_and_grpc_to_the_vpc_only(triton_build_root):
    run = run_triton_stack("prod", triton_build_root, config_changes={"triton-platform:triton": {"internalNlb": True}})
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


def test_more_tags_than_s3_allows_on_an_object_stop_the_program_naming_the_config_key(triton_build_root):
    tags = {f"team-{i}": "x" for i in range(10)}  # + platform.io/stack = 11 > S3's 10 per object
    run = run_triton_stack("dev", triton_build_root, config_changes={"triton-platform:tags": tags})
    assert isinstance(run.error, PublicationError)
    assert "exceed the 10 S3 allows" in str(run.error) and "triton-platform:tags" in str(run.error)
    assert _triton_registrations(run) == []


def test_fp8_llm_on_a_gpu_without_fp8_fails_before_any_triton_resource(triton_build_root):
    pools = [
        {"name": "llm", "role": "llm", "instanceTypes": ["g5.4xlarge"], "gpuSku": "a10g", "minSize": 0, "maxSize": 2,
         "desiredSize": 1},
        {"name": "speech", "role": "speech", "instanceTypes": ["g6.xlarge"], "gpuSku": "l4", "minSize": 0,
         "maxSize": 2, "desiredSize": 1},
    ]  # fmt: skip
    run = run_triton_stack("dev", triton_build_root, config_changes={"triton-platform:gpuPools": pools})
    assert isinstance(run.error, TritonConfigError)
    assert "gpuPools[llm]: model 'llm_chat': precision fp8 needs FP8 tensor cores, which a10g lacks" in str(run.error)
    assert _triton_registrations(run) == []

    # BF16 passes the precision check, and then the GPU memory plan says why an A10G still cannot host the pair.
    bf16 = {"llm_chat": {"precision": "bf16"}, "llm_support": {"precision": "bf16"}}
    run = run_triton_stack(
        "dev", triton_build_root, config_changes={"triton-platform:gpuPools": pools, "triton-platform:models": bf16}
    )
    assert isinstance(run.error, TritonConfigError) and "precision fp8" not in str(run.error)
    assert "LLM models do not fit their GPU" in str(run.error) and "GPU pool 'llm' (a10g, 24 GiB" in str(run.error)
    assert _triton_registrations(run) == []


def test_a_pool_without_models_fails_before_any_triton_resource(triton_build_root):
    run = run_triton_stack("dev", triton_build_root, config_changes={"triton-platform:models": {
        name: {"enabled": False} for name in ("llm_chat", "llm_support", "voice_pipeline")}})  # fmt: skip
    assert isinstance(run.error, TritonConfigError)
    assert "GPU pool 'llm' (role llm) serves no enabled model" in str(run.error)
    assert _triton_registrations(run) == []


def test_declared_engines_plug_in_as_the_program_declares_them(tmp_path):
    """The real engines.declare_engines output ((engine, pool) -> DeclaredEngine) wires straight into
    build_triton: every plan and checkpoint is copied from its Engine's uri."""
    import hashlib

    from engines.catalog_engines import plan_engines
    from engines.source_lock import SourceLock
    from engines.spec import SourceRef
    from infra.engine_declarations import declare_engines
    from infra.program import build_platform, settings_from_engine, stack_outputs
    from infra.stack_plan import gpu_specs, plan_stack
    from infra.triton.wiring import build_triton
    from model_repo import catalog
    from tests.pulumi_harness import stack_config
    from tests.triton.conftest import triton_mocks
    from tools.offline import run_program

    def pin(uri: str) -> SourceRef:  # what `python -m engines.source_lock record` writes, for this test's stack
        return SourceRef(f"store://pinned/{uri.split('://', 1)[1]}", hashlib.sha256(uri.encode()).hexdigest(), "locked")

    declared_engines = {}

    def program():
        settings = settings_from_engine()
        platform = build_platform(settings)
        specs = gpu_specs(catalog.select(settings.models))
        sources = {s.source.uri for s in specs if s.role == "llm"} | {e.source.uri for s in specs for e in s.engines}
        sources.add("store://calibration/llm-fp8-calibration.txt")
        store = platform.stores.bucket_name.apply(lambda b: f"s3://{b}/engine-store")
        plans = plan_engines(specs, settings.gpu_pools, SourceLock({u: pin(u) for u in sources}))
        declared = declare_engines(plans, store)
        declared_engines.update(declared)
        triton = build_triton(platform, plan_stack(settings), engines=declared, build_root=tmp_path / "repository")
        return {**stack_outputs(platform), **triton.outputs}

    config = stack_config("dev")
    run = run_program(config, stack="dev", program=program, mocks=triton_mocks(config["aws:region"]))
    run.raise_error()
    engines = {r.name: r for r in run.registrations if r.type == "pulumi-python:dynamic/engines:Engine"}
    copies = run.of_type("pulumi-python:dynamic/triton:StoreCopy")
    by_engine = {c.inputs["destination"].split("/")[3]: c.inputs for c in copies if c.inputs["kind"] != "object"}
    assert sorted(by_engine) == sorted(engine for engine, _pool in declared_engines)
    for (engine, pool), item in declared_engines.items():
        registration = engines[f"engine-{item.plan.resource_name}"]
        assert by_engine[engine]["source"] == registration.outputs["uri"] and registration.outputs["uri"].endswith(
            f"engines/{registration.inputs['key']}/artifact/"
        )
        assert f"/{pool}/{engine}/1/" in by_engine[engine]["destination"]
