"""The stack outputs keep their contract (docs/outputs.contract.json, docs/outputs.md) on every stack.

The program runs per stack under Pulumi mocks (tests/pulumi_harness.py); its resolved outputs and
their secret flags are checked against the contract: a stable output renamed or removed, a type
change, a lost (or new) secret flag, or an undocumented output fails.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import pytest

from tests.delivery.contract import contract_problems, load_contract

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "outputs.md"
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


# --- the contract itself ------------------------------------------------------------------------------------


def test_contract_entries_are_complete_and_examples_match_their_schema():
    contract = load_contract()
    assert SEMVER.match(contract["outputsVersion"])
    for name, spec in contract["outputs"].items():
        assert set(spec) == {"status", "secret", "schema", "description", "example"}, name
        assert spec["status"] in ("stable", "planned"), name
        assert isinstance(spec["secret"], bool), name
        jsonschema.Draft202012Validator.check_schema(spec["schema"])
        if not spec["secret"]:
            jsonschema.validate(spec["example"], spec["schema"], cls=jsonschema.Draft202012Validator)
    assert contract["outputs"]["outputsVersion"]["example"] == contract["outputsVersion"]
    assert contract["outputs"]["kubeconfig"]["secret"] is True


def _doc_table() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \| (\w+) \| [^|]+ \|$", line)
        if match:
            rows[match.group(1)] = (match.group(2).strip().strip("*"), match.group(3))
    return rows


def test_docs_describe_every_output_with_its_secret_flag_and_status():
    contract = load_contract()
    table = _doc_table()
    assert set(table) == set(contract["outputs"]), "docs/outputs.md summary table and the contract differ"
    text = DOC.read_text()
    for name, spec in contract["outputs"].items():
        assert table[name] == ("yes" if spec["secret"] else "no", spec["status"]), name
        assert f"### `{name}`" in text, f"docs/outputs.md has no section for {name}"
    assert f"`outputsVersion` = `{contract['outputsVersion']}`" in text


# --- the program ---------------------------------------------------------------------------------------------


def test_program_outputs_keep_the_contract(stack_run):
    problems = contract_problems(stack_run.outputs, stack_run.secret_outputs)
    assert problems == [], f"stack {stack_run.stack}:\n" + "\n".join(problems)
    assert stack_run.outputs["outputsVersion"] == load_contract()["outputsVersion"]


def test_stacks_export_the_same_output_names(dev_stack, prod_stack):
    assert set(dev_stack.outputs) == set(prod_stack.outputs)
    assert dev_stack.secret_outputs == prod_stack.secret_outputs


# --- the check catches each kind of break --------------------------------------------------------------------------


@pytest.fixture
def dev_outputs(dev_stack):
    return copy.deepcopy(dev_stack.outputs), set(dev_stack.secret_outputs)


def test_a_renamed_output_is_reported(dev_outputs):
    outputs, secret = dev_outputs
    outputs["eksClusterName"] = outputs.pop("clusterName")
    problems = contract_problems(outputs, secret)
    assert any("'clusterName' is missing" in p for p in problems)
    assert any("'eksClusterName' is not in the contract" in p for p in problems)


def test_a_lost_secret_flag_is_reported(dev_outputs):
    outputs, secret = dev_outputs
    secret.discard("kubeconfig")
    assert any("'kubeconfig' lost its secret flag" in p for p in contract_problems(outputs, secret))
    secret.update({"kubeconfig", "region"})
    assert any("'region' became secret" in p for p in contract_problems(outputs, secret))


def test_a_type_change_is_reported(dev_outputs):
    outputs, secret = dev_outputs
    outputs["nodeGroups"] = list(outputs["nodeGroups"].values())
    assert any("'nodeGroups'" in p and "is not of type 'object'" in p for p in contract_problems(outputs, secret))


def test_a_shape_change_inside_an_output_is_reported(dev_outputs):
    outputs, secret = dev_outputs
    outputs["tritonEndpoints"] = {"llm": {"http": "http://triton-llm:8000"}}  # no grpc
    assert any(
        "tritonEndpoints" in p and "'grpc' is a required property" in p for p in contract_problems(outputs, secret)
    )
    outputs["tritonImages"] = {"llm": "nvcr.io/nvidia/tritonserver:25.10-py3"}  # a tag, not a digest
    assert any("'tritonImages' at llm" in p for p in contract_problems(outputs, secret))
    outputs["servedModels"] = {"llm": [{"name": "llm_chat", "version": "1"}]}  # the planned shape, not the contract
    assert any("'servedModels' at llm/0" in p for p in contract_problems(outputs, secret))


def test_a_planned_output_is_optional_until_exported_then_must_match(dev_outputs):
    outputs, secret = dev_outputs
    contract = copy.deepcopy(load_contract())
    contract["outputs"]["inferenceQuota"] = {
        "status": "planned",
        "secret": False,
        "schema": {"type": "integer", "minimum": 0},
        "description": "a future output",
        "example": 10,
    }
    assert contract_problems(outputs, secret, contract) == []
    outputs["inferenceQuota"] = "ten"
    assert any(
        "'inferenceQuota'" in p and "is not of type 'integer'" in p
        for p in contract_problems(outputs, secret, contract)
    )


def test_the_withdrawn_planned_name_is_not_part_of_the_contract(dev_outputs):
    # tritonImageDigest was planned, never exported, and replaced by tritonImages (one image per flavour).
    outputs, secret = dev_outputs
    assert "tritonImageDigest" not in load_contract()["outputs"] and "tritonImageDigest" not in outputs
    outputs["tritonImageDigest"] = next(iter(outputs["tritonImages"].values()))
    assert any("'tritonImageDigest' is not in the contract" in p for p in contract_problems(outputs, secret))
