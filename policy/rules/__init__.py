"""The platform's guardrails as pure functions over what the Pulumi engine sees.

Every rule reads a resource's type token and its input properties exactly as the engine registers them:
camelCase names from the pulumi-aws 7.x and pulumi-kubernetes 4.x schemas (``metadataOptions.httpTokens``,
``spec.template.spec.containers[].startupProbe``), Helm values as written. A rule returns the list of
violations it found, each a sentence that names the offending property, the value and the fix; an empty
list means compliant.

This module imports nothing from ``pulumi_policy`` on purpose: the pack's ``__main__.py`` adapts these
functions to the Policy SDK (which lives in its own virtualenv, ``policy/.venv``), while the project's
test suite calls them directly with synthetic arguments and with the resources the program registers
under Pulumi mocks.

During ``pulumi preview`` some inputs are not known yet (an image digest built in the same update, a
bucket id). The adapter replaces them with ``UNKNOWN``; a rule never reports a violation on a value it
cannot see, it checks it on the next run, when the value is known.

The rules live in ``base`` (resources, context, type tokens, readers), ``aws`` and ``kubernetes``; this
module holds the registry and re-exports every name, so ``rules.X`` is the way to reach them (the
pack imports it as the top-level ``rules``, the tests as ``policy.rules``).
"""

from __future__ import annotations

from collections.abc import Sequence

from .aws import (  # noqa: F401 (re-exported)
    check_ecr,
    check_eks_secrets_encryption,
    check_gpu_taint,
    check_imdsv2,
    check_prod_endpoint_private,
    check_s3_buckets,
    check_s3_settings,
    instance_family,
    is_gpu_node_group,
)
from .base import (  # noqa: F401 (re-exported)
    _CRON_JOB,
    _SERVING_WORKLOADS,
    _TEMPLATED_WORKLOADS,
    EC2_INSTANCE,
    ECR_REPOSITORY,
    EKS_CLUSTER,
    EKS_NODE_GROUP,
    GPU_INSTANCE_FAMILIES,
    GPU_TAINT_KEY,
    HELM_CHARTS,
    HELM_RELEASE,
    LAUNCH_TEMPLATE,
    S3_BUCKETS,
    S3_ENCRYPTION,
    S3_PUBLIC_ACCESS_BLOCK,
    S3_VERSIONING,
    UNKNOWN,
    Context,
    Resource,
    ResourceCheck,
    ResourceRule,
    StackCheck,
    StackRule,
    Violation,
    environment_of,
    from_engine_value,
)
from .kubernetes import (  # noqa: F401 (re-exported)
    check_grafana_admin_secret,
    check_grafana_anonymous,
    check_plain_secret_env,
    check_triton_containers,
    grafana_values,
    is_triton_image,
    pod_spec,
    triton_containers,
)

# --- the registry ----------------------------------------------------------------------------------------

RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule("imdsv2-hop-limit-1", "Launch templates require IMDSv2 with hop limit 1; node groups use one.",
                 check_imdsv2),
    ResourceRule("gpu-node-groups-tainted", "GPU node groups carry the nvidia.com/gpu NoSchedule taint.",
                 check_gpu_taint),
    ResourceRule("s3-settings-secure", "S3 encryption is SSE-KMS, versioning Enabled, public access fully blocked.",
                 check_s3_settings),
    ResourceRule("ecr-immutable-scan-on-push", "ECR repositories have immutable tags and scan on push.", check_ecr),
    ResourceRule("prod-eks-endpoint-private", "The prod EKS API endpoint is private only.",
                 check_prod_endpoint_private),
    ResourceRule("eks-secrets-kms-encrypted", "EKS encrypts Kubernetes Secrets with a KMS key.",
                 check_eks_secrets_encryption),
    ResourceRule("triton-probes-limits-digest",
                 "Triton containers have startup/readiness/liveness probes, resource limits and an image by digest.",
                 check_triton_containers),
    ResourceRule("grafana-anonymous-access-off", "Grafana anonymous access is disabled.", check_grafana_anonymous),
    ResourceRule("grafana-admin-from-secret", "Grafana admin credentials come from an existing Secret.",
                 check_grafana_admin_secret),
    ResourceRule("no-plain-secret-env", "Credential-named environment variables use valueFrom, not a plain value.",
                 check_plain_secret_env),
)

STACK_RULES: tuple[StackRule, ...] = (
    StackRule("s3-buckets-encrypted-versioned-private",
              "Every S3 bucket has SSE-KMS encryption, versioning and a full public access block.",
              check_s3_buckets),
)

RULE_NAMES = tuple(r.name for r in RESOURCE_RULES) + tuple(r.name for r in STACK_RULES)


def evaluate(resources: Sequence[Resource], ctx: Context) -> list[Violation]:
    """Run every rule over a stack's resources, as the policy pack does during preview/up."""
    violations = []
    for resource in resources:
        for rule in RESOURCE_RULES:
            for message in rule.check(resource.type, resource.props, ctx):
                violations.append(Violation(rule.name, resource.urn or resource.name, message))
    for stack_rule in STACK_RULES:
        for urn, message in stack_rule.check(resources, ctx):
            violations.append(Violation(stack_rule.name, urn, message))
    return violations
