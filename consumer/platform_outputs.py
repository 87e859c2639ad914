"""Typed access to the triton-platform stack outputs through a StackReference.

The platform documents its outputs in docs/outputs.md (contract version ``outputsVersion``). This
reader checks the contract's major version before handing out any value, keeps secret outputs secret
(``kubeconfig`` comes back as a Pulumi secret and stays one in this stack), and turns a missing output
or pool into an error that says what is missing and what exists.
"""

from __future__ import annotations

from typing import Any

import pulumi

# The contract major this consumer was written against (docs/outputs.md), and the first minor that
# exports what it reads (tritonEndpoints and servedModels arrived in 1.1.0).
SUPPORTED_MAJOR = 1
MINIMUM_MINOR = 1


class PlatformOutputsError(ValueError):
    """The referenced platform stack does not export what this consumer needs."""


def check_version(stack: str, version: Any) -> str:
    major = str(version).split(".", 1)[0]
    if not major.isdigit() or int(major) != SUPPORTED_MAJOR:
        raise PlatformOutputsError(
            f"platform stack {stack} exports outputsVersion {version!r}; this program reads major "
            f"{SUPPORTED_MAJOR} (docs/outputs.md): update the consumer for the new contract or pin the platform"
        )
    minor = str(version).split(".")[1] if str(version).count(".") >= 1 else ""
    if not minor.isdigit() or int(minor) < MINIMUM_MINOR:
        raise PlatformOutputsError(
            f"platform stack {stack} exports outputsVersion {version!r}; this program needs "
            f"{SUPPORTED_MAJOR}.{MINIMUM_MINOR} or later (tritonEndpoints, servedModels): update the platform stack"
        )
    return str(version)


def pick_endpoint(stack: str, endpoints: Any, pool: str, protocol: str) -> str:
    pools = endpoints if isinstance(endpoints, dict) else {}
    if pool not in pools:
        raise PlatformOutputsError(f"platform stack {stack} has no Triton pool {pool!r}; its pools: {sorted(pools)}")
    if protocol not in pools[pool]:
        raise PlatformOutputsError(
            f"platform stack {stack} pool {pool!r} has no {protocol!r} endpoint; it has {sorted(pools[pool])}"
        )
    return pools[pool][protocol]


class PlatformOutputs:
    """The outputs of ``<org>/triton-platform/<stack>``, version-checked."""

    def __init__(self, stack: str, opts: pulumi.ResourceOptions | None = None):
        self.stack = stack
        self.reference = pulumi.StackReference(stack, opts=opts)
        self.version: pulumi.Output[str] = self.reference.require_output("outputsVersion").apply(
            lambda v: check_version(stack, v)
        )

    def require(self, name: str) -> pulumi.Output[Any]:
        """An output, only once the contract version is known to be compatible (secretness preserved)."""
        return pulumi.Output.all(self.version, self.reference.require_output(name)).apply(lambda pair: pair[1])

    @property
    def kubeconfig(self) -> pulumi.Output[str]:
        return self.require("kubeconfig")

    @property
    def triton_endpoints(self) -> pulumi.Output[dict[str, dict[str, str]]]:
        return self.require("tritonEndpoints")

    @property
    def served_models(self) -> pulumi.Output[dict[str, list[dict[str, Any]]]]:
        """GPU pool -> [{"name": ..., "versions": [...]}] (docs/outputs.md, since contract 1.1.0)."""
        return self.require("servedModels")

    def endpoint(self, pool: str, protocol: str = "grpc") -> pulumi.Output[str]:
        return self.triton_endpoints.apply(lambda e: pick_endpoint(self.stack, e, pool, protocol))
