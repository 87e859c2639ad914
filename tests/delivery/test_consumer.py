"""The example consumer (consumer/) runs against the platform's real outputs, under Pulumi mocks.

The platform program runs first (tests/pulumi_harness.py); its resolved outputs and secret output
names become what the consumer's StackReference reads, exactly as the engine would serve them. Outputs
the platform does not export yet (status "planned" in the contract, if any) are filled from the
contract's examples, so the consumer is exercised against the documented shape until the real ones land.
"""

from __future__ import annotations

import copy
import json
import runpy
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import settings as runtime_settings

from tests.delivery.contract import drain_event_loop, load_contract
from tools.offline import PlatformMocks, run_program

ROOT = Path(__file__).resolve().parents[2]
CONSUMER = ROOT / "consumer"
STACK_REFERENCE = "pulumi:pulumi:StackReference"


def platform_view(run) -> tuple[dict[str, Any], list[str]]:
    """What a StackReference to this platform stack returns: outputs and the names of the secret ones."""
    outputs = copy.deepcopy(run.outputs)
    for name, spec in load_contract()["outputs"].items():
        if name not in outputs and spec["status"] == "planned":
            outputs[name] = copy.deepcopy(spec["example"])
    return outputs, sorted(run.secret_outputs)


def _run_consumer(outputs: dict[str, Any], secret_names: list[str], *, stack: str = "dev"):
    references: list[str] = []

    def stack_reference(mocks, args):
        references.append(args.inputs["name"])
        return args.inputs["name"], {"name": args.inputs["name"], "outputs": outputs, "secretOutputNames": secret_names}

    def consumer_program():
        runpy.run_path(str(CONSUMER), run_name="__main__")
        return dict(getattr(runtime_settings.get_root_resource(), "outputs", {}) or {})

    mocks = PlatformMocks(region="us-west-2", resources={STACK_REFERENCE: stack_reference})
    try:
        run = run_program(
            {"voice-gateway:platformOrg": "acme"},
            stack=stack,
            project="voice-gateway",
            program=consumer_program,
            mocks=mocks,
        )
    finally:
        drain_event_loop()
    return run, references


@pytest.fixture(scope="module")
def consumer_on_dev(request):
    dev = request.getfixturevalue("dev_stack")
    outputs, secret_names = platform_view(dev)
    run, references = _run_consumer(outputs, secret_names)
    run.raise_error()
    return run, references, outputs


def test_consumer_references_the_platform_stack_by_org_project_stack(consumer_on_dev):
    _, references, _ = consumer_on_dev
    assert references == ["acme/triton-platform/dev"]


def test_consumer_keeps_the_kubeconfig_secret(consumer_on_dev):
    run, _, outputs = consumer_on_dev
    provider = run.one("pulumi:providers:kubernetes", "platform-cluster")
    assert provider.inputs["kubeconfig"] == outputs["kubeconfig"]
    assert "kubeconfig" in provider.secret_inputs, "the platform's kubeconfig lost its secret flag in the consumer"
    exported = {k: v for k, v in run.outputs.items() if k not in run.secret_outputs}
    assert outputs["kubeconfig"] not in map(str, exported.values())


def test_consumer_wires_endpoints_and_models_into_its_app(consumer_on_dev, dev_stack):
    run, _, outputs = consumer_on_dev
    namespace = run.one("kubernetes:core/v1:Namespace", "voice-gateway")
    assert namespace.inputs["metadata"]["labels"] == {"platform.io/triton-client": "true"}
    config_map = run.one("kubernetes:core/v1:ConfigMap", "triton-endpoints")
    assert config_map.provider_urn == run.one("pulumi:providers:kubernetes", "platform-cluster").urn
    data = config_map.inputs["data"]
    assert outputs == dev_stack.outputs  # the platform's real outputs, none filled in from the contract's examples
    assert data["LLM_GRPC_ENDPOINT"] == outputs["tritonEndpoints"]["llm"]["grpc"]
    assert data["SPEECH_GRPC_ENDPOINT"] == outputs["tritonEndpoints"]["speech"]["grpc"]
    assert json.loads(data["SERVED_MODELS"]) == outputs["servedModels"]
    assert data["PLATFORM_OUTPUTS_VERSION"] == load_contract()["outputsVersion"]
    assert run.outputs["llmGrpcEndpoint"] == outputs["tritonEndpoints"]["llm"]["grpc"]
    assert "llmGrpcEndpoint" not in run.secret_outputs


def test_consumer_refuses_an_incompatible_contract_major(dev_stack):
    outputs, secret_names = platform_view(dev_stack)
    outputs["outputsVersion"] = "2.0.0"
    run, _ = _run_consumer(outputs, secret_names)
    assert run.error is not None
    assert "outputsVersion '2.0.0'" in str(run.error) and "major 1" in str(run.error)


def test_consumer_refuses_a_platform_older_than_the_outputs_it_reads(dev_stack):
    outputs, secret_names = platform_view(dev_stack)
    outputs["outputsVersion"] = "1.0.0"  # before tritonEndpoints and servedModels were exported
    run, _ = _run_consumer(outputs, secret_names)
    assert run.error is not None
    assert "outputsVersion '1.0.0'" in str(run.error) and "needs 1.1 or later" in str(run.error)


def test_consumer_names_a_missing_pool(dev_stack):
    outputs, secret_names = platform_view(dev_stack)
    outputs["tritonEndpoints"] = {"llm": outputs["tritonEndpoints"]["llm"]}
    run, _ = _run_consumer(outputs, secret_names)
    assert run.error is not None and "no Triton pool 'speech'" in str(run.error) and "['llm']" in str(run.error)


def test_consumer_fails_on_a_missing_output(dev_stack):
    outputs, secret_names = platform_view(dev_stack)
    del outputs["servedModels"]
    run, _ = _run_consumer(outputs, secret_names)
    assert run.error is not None and "servedModels" in str(run.error)
