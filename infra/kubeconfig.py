"""The kubeconfig for an EKS cluster, built as a secret Output.

It holds no credential itself: kubectl (and the Pulumi Kubernetes provider) run
``aws eks get-token`` on every connection with whatever AWS identity is active, and the cluster's
access entries decide what that identity may do. It is still exported as a secret because it names
the API endpoint of a cluster whose endpoint may be private.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi


def render_kubeconfig(cluster_name: str, endpoint: str, certificate_authority_data: str, region: str) -> dict[str, Any]:
    user = f"aws-eks-{cluster_name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": endpoint, "certificate-authority-data": certificate_authority_data},
            }
        ],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": cluster_name,
        "preferences": {},
        "users": [
            {
                "name": user,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": [
                            "--region",
                            region,
                            "eks",
                            "get-token",
                            "--cluster-name",
                            cluster_name,
                            "--output",
                            "json",
                        ],
                        "interactiveMode": "Never",
                        # AWS_PROFILE etc. come from the caller's environment, never from this file.
                        "provideClusterInfo": False,
                    }
                },
            }
        ],
    }


def kubeconfig_output(
    cluster_name: pulumi.Input[str],
    endpoint: pulumi.Input[str],
    certificate_authority_data: pulumi.Input[str],
    region: str,
) -> pulumi.Output[str]:
    """The kubeconfig as a JSON string (kubectl and the Kubernetes provider read JSON), marked secret."""
    rendered = pulumi.Output.all(cluster_name, endpoint, certificate_authority_data).apply(
        lambda parts: json.dumps(render_kubeconfig(parts[0], parts[1], parts[2], region), indent=2)
    )
    return pulumi.Output.secret(rendered)
