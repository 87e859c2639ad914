"""The project and stack files pass what the Pulumi CLI checks before it runs the program (its JSON schema
and config rules, tests/pulumi_cli_rules.py), for the platform and for the consumer example."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pulumi_cli_rules import project_violations, stack_violations, stacks_of

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = [ROOT, ROOT / "consumer"]


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_project_file_passes_the_cli_rules(project):
    assert project_violations(project) == []


@pytest.mark.parametrize("stack", stacks_of(ROOT))
def test_every_stack_file_passes_the_cli_rules(stack):
    assert stacks_of(ROOT) == ["dev", "prod"]
    assert stack_violations(ROOT, stack) == []


def test_the_consumer_needs_only_the_org(tmp_path):
    """`pulumi config set platformOrg acme && pulumi up` is enough: platformStack falls back to the stack name."""
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "consumer" / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  voice-gateway:platformOrg: acme\n")
    assert stack_violations(tmp_path, "dev") == []
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    missing = "Stack 'dev' is missing configuration value(s) voice-gateway:platformOrg"
    assert stack_violations(tmp_path, "dev") == [missing]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("  aws:region:\n    type: string\n", "'aws:region' is not namespaced by the project and should not define"),
        ("  aws:region:\n    default: us-west-2\n", "should not define a default value"),
        ("  aws:region:\n    description: x\n", "'aws:region' is namespaced and must provide an attribute 'value'"),
        ("  demo:pools:\n    type: array\n", "declares an array but does not specify the items type"),
        ("  demo:n:\n    type: integer\n    default: many\n", "default value specified for configuration key 'demo:n'"),
        ("  demo:n:\n    default: 1\n    value: 2\n", "cannot have both a 'default' and 'value'"),
        ("  demo:n:\n    typo: integer\n", "Pulumi.yaml: config/demo:n:"),  # the JSON schema refuses it
    ],
)
def test_the_rules_refuse_what_the_cli_refuses(tmp_path, config, message):
    (tmp_path / "Pulumi.yaml").write_text(f"name: demo\nruntime: python\nconfig:\n{config}")
    assert any(message in problem for problem in project_violations(tmp_path)), project_violations(tmp_path)


def test_stack_values_are_required_and_typed(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text(
        "name: demo\nruntime: python\nconfig:\n  demo:pools:\n    type: array\n    items:\n      type: object\n"
        "  demo:protect:\n    type: boolean\n    default: false\n"
    )
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  demo:protect: yes\n")
    problems = stack_violations(tmp_path, "dev")
    assert "Stack 'dev' is missing configuration value(s) demo:pools" in problems
    assert "Stack 'dev' with configuration key 'demo:protect' must be of type 'boolean'" in problems  # yes is a string
