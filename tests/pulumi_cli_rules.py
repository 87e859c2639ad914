"""What the Pulumi CLI checks in ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml`` before it starts a program.

Written for this project after pulumi/pulumi's Go sources (commit 1b594989, see
``tests/fixtures/pulumi/PROVENANCE.md``); each rule names the function it follows and returns the
message the CLI prints, so a test failure reads like the CLI's own refusal:

* the project file against Pulumi's JSON schema (``workspace.ValidateProject``);
* ``Project.Validate`` (``project.go:837-889``): a project key may not have both ``default`` and
  ``value``; an ``array`` needs ``items``; a typed ``default`` must match its type; a key of another
  namespace (``aws:region``) may declare neither ``type`` nor ``default`` and must carry ``value``;
* per stack (``pkg/workspace/config.go``): every project key with neither ``default`` nor ``value``
  is set in the stack file (``mergeConfig``), and every set value matches the declared type
  (``validateStackConfigValue``, with ``ValidateConfigValue``'s notion of each type).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA = Path(__file__).resolve().parent / "fixtures" / "pulumi" / "project.schema.json"


class _GoYaml(yaml.SafeLoader):
    """YAML as Go's yaml.v3 reads it: YAML 1.2 booleans only (``yes``/``on`` stay strings), no timestamps."""


_GoYaml.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_GoYaml.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8-sig"), Loader=_GoYaml)


def _namespaced_by_project(project: str, key: str) -> bool:
    return ":" not in key or key.startswith(f"{project}:")


def _value_matches(type_: str | None, items: dict | None, value: Any) -> bool:
    """``ValidateConfigValue``: scalars may arrive as strings; objects are maps; arrays check their items."""
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value == int(value)):
            return True
        return isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value) is not None
    if type_ == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if type_ == "object":
        return isinstance(value, dict)
    if type_ == "array" and items and isinstance(value, list):
        return all(_value_matches(items.get("type"), items.get("items"), v) for v in value)
    return False


def _declarations(project: dict) -> dict[str, dict]:
    """Config declarations with the shorthand expanded: ``key: value`` is a ``default`` for a project key
    and a ``value`` for another namespace's key (``project.go:486-517``)."""
    out = {}
    name = project.get("name", "")
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict):
            out[key] = decl
        else:
            out[key] = {"default": decl} if _namespaced_by_project(name, key) else {"value": decl}
    return out


def project_violations(project_dir: Path) -> list[str]:
    path = project_dir / "Pulumi.yaml"
    project = load_yaml(path)
    problems = [
        f"{path.name}: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).iter_errors(project)
    ]
    if problems:
        return problems
    name = project["name"]
    for key, decl in _declarations(project).items():
        type_, items = decl.get("type"), decl.get("items")
        if "default" in decl and "value" in decl:
            problems.append(f"project config '{key}' cannot have both a 'default' and 'value' attribute")
        if type_ == "array" and not items:
            problems.append(f"The configuration key '{key}' declares an array but does not specify the items type")
        if type_ and "default" in decl and not _value_matches(type_, items, decl["default"]):
            problems.append(
                f"The default value specified for configuration key '{key}' is not of the expected type '{type_}'"
            )
        if not _namespaced_by_project(name, key):
            if type_:
                problems.append(
                    f"Configuration key '{key}' is not namespaced by the project and should not define a type"
                )
            if "default" in decl:
                problems.append(
                    f"Configuration key '{key}' is not namespaced by the project and should not define a default "
                    "value. Did you mean to use the 'value' attribute instead of 'default'?"
                )
            if "value" not in decl:
                problems.append(f"Configuration key '{key}' is namespaced and must provide an attribute 'value'")
    return problems


def stack_violations(project_dir: Path, stack: str) -> list[str]:
    project = load_yaml(project_dir / "Pulumi.yaml")
    name = project["name"]
    document = load_yaml(project_dir / f"Pulumi.{stack}.yaml") or {}
    values = {(k if ":" in k else f"{name}:{k}"): v for k, v in (document.get("config") or {}).items()}
    problems = []
    declared = {(k if ":" in k else f"{name}:{k}"): d for k, d in _declarations(project).items()}
    missing = sorted(
        k for k, d in declared.items()
        if _namespaced_by_project(name, k) and "default" not in d and "value" not in d and k not in values
    )  # fmt: skip
    if missing:
        problems.append(f"Stack '{stack}' is missing configuration value(s) {', '.join(missing)}")
    for key, value in values.items():
        decl = declared.get(key)
        if decl is None or not decl.get("type"):
            continue
        if isinstance(value, dict) and "secure" in value and len(value) == 1:
            continue  # an encrypted value: its type is checked after decryption
        type_ = decl["type"]
        shown = value
        if type_ in ("string", "integer", "boolean") and isinstance(value, int | float | bool):
            # Scalars in a stack file reach the check as their string form (config.Value).
            shown = json.dumps(value) if isinstance(value, bool) else str(value)
        if not _value_matches(type_, decl.get("items"), shown):
            problems.append(f"Stack '{stack}' with configuration key '{key}' must be of type '{type_}'")
    return problems


def stacks_of(project_dir: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
