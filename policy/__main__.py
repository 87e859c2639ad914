"""The platform's policy pack: every rule of ``rules.py``, enforced as MANDATORY.

Run by the Pulumi CLI, never imported by the program:

    pulumi preview --stack prod --policy-pack policy [--policy-pack-config policy/config/prod.json]

The CLI starts this file with ``python -m pulumi.policy`` inside ``policy/.venv`` (see
``PulumiPolicy.yaml``); the pack directory is on ``sys.path``, so ``rules`` imports as a top-level
module. A violation of any policy fails the preview or update.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import rules
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import proxy as _proxy

PACK_NAME = "triton-platform-guardrails"
PROJECT = "triton-platform"

_UNKNOWN_SENTINELS = (
    _proxy.UNKNOWN_BOOLEAN_VALUE,
    _proxy.UNKNOWN_NUMBER_VALUE,
    _proxy.UNKNOWN_STRING_VALUE,
    _proxy.UNKNOWN_ARRAY_VALUE,
    _proxy.UNKNOWN_ASSET_VALUE,
    _proxy.UNKNOWN_ARCHIVE_VALUE,
    _proxy.UNKNOWN_OBJECT_VALUE,
)

# Per-policy configuration a stack may pass with --policy-pack-config (policy/config/<stack>.json).
_ENVIRONMENT_SCHEMA = PolicyConfigSchema(
    properties={"environment": {"type": "string", "enum": ["dev", "prod"]}},
)
_ALLOWED_NAMES_SCHEMA = PolicyConfigSchema(
    properties={"allowedNames": {"type": "array", "items": {"type": "string"}}},
)
_CONFIG_SCHEMAS = {
    "prod-eks-endpoint-private": _ENVIRONMENT_SCHEMA,
    "no-plain-secret-env": _ALLOWED_NAMES_SCHEMA,
}


def _plain(value: Any) -> Any:
    """Unwrap the SDK's unknown-checking proxies without touching (and raising on) unknown values."""
    if type(value).__name__ in ("_DictProxy", "_ListProxy"):
        value = value["__target"]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(item) for item in value]
    return value


def _props(raw: Any) -> dict[str, Any]:
    return rules.from_engine_value(_plain(raw), _UNKNOWN_SENTINELS)


def _stack_name() -> str | None:
    try:
        return pulumi.get_stack()
    except Exception:  # noqa: BLE001 - no stack settings outside a CLI run; fall back to config only
        return None


def _context(policy_config: Mapping[str, Any] | None) -> rules.Context:
    try:
        stack_environment = pulumi.Config(PROJECT).get("environment")
    except Exception:  # noqa: BLE001 - config is only there when the CLI passes the stack's config
        stack_environment = None
    allowed = (policy_config or {}).get("allowedNames") or []
    return rules.Context(
        environment=rules.environment_of(policy_config, stack_environment, _stack_name()),
        allowed_env_names=frozenset(str(n) for n in allowed),
    )


def _resource_policy(rule: rules.ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        ctx = _context(args.get_config())
        for message in rule.check(args.resource_type, _props(args.props), ctx):
            report_violation(f"{args.name}: {message}", args.urn)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=_CONFIG_SCHEMAS.get(rule.name),
    )


def _dependency_urns(resource: Any) -> dict[str, list[str]]:
    deps = getattr(resource, "property_dependencies", None) or {}
    return {key: [getattr(d, "urn", str(d)) for d in value] for key, value in deps.items()}


def _stack_policy(rule: rules.StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [
            rules.Resource(
                type=r.resource_type,
                props=_props(r.props),
                urn=r.urn,
                name=r.name,
                property_dependencies=_dependency_urns(r),
            )
            for r in args.resources
        ]
        for urn, message in rule.check(resources, _context(args.get_config())):
            report_violation(message, urn or None)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def build_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [_resource_policy(r) for r in rules.RESOURCE_RULES] + [_stack_policy(r) for r in rules.STACK_RULES]


if __name__ == "__main__":
    # Starts the analyzer's gRPC server and serves the CLI until it exits.
    PolicyPack(
        name=PACK_NAME,
        policies=build_policies(),
        enforcement_level=EnforcementLevel.MANDATORY,
        description="Guardrails of the Triton GPU platform: IMDSv2, GPU taints, S3/ECR/EKS hardening, "
        "Triton probes/limits/digests, Grafana access, no plain secrets.",
    )
