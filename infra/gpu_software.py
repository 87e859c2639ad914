"""What makes GPUs schedulable and observable: the NVIDIA device plugin and the DCGM exporter.

Settings: ``devicePlugin.sharing`` / ``devicePlugin.replicas`` (time-slicing).

Both come from NVIDIA's official Helm charts at the versions pinned in ``platform_spec.versions``, into the
``gpu-system`` namespace, through the platform's explicit Kubernetes provider. Both run only on GPU
nodes (node affinity on the GPU SKU label) and tolerate the GPU taint. The DCGM exporter's own
ServiceMonitor stays off: monitoring declares the scrape configuration it owns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import scheduling
from infra.charts import release_chart
from platform_spec import versions
from platform_spec.settings import DevicePluginSettings

NAMESPACE = "gpu-system"
DEVICE_PLUGIN_RELEASE = "nvidia-device-plugin"
DCGM_EXPORTER_RELEASE = "dcgm-exporter"
DCGM_EXPORTER_PORT = 9400  # the chart's metrics Service port; monitoring scrapes it
DCGM_EXPORTER_SELECTOR = {"app.kubernetes.io/name": "dcgm-exporter"}  # labels on the chart's Service


def namespace_manifest() -> dict[str, Any]:
    return {
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                # Both daemons need host access (device-plugin socket, DCGM with SYS_ADMIN), so this
                # namespace alone is privileged; warnings still flag anything beyond baseline.
                "pod-security.kubernetes.io/enforce": "privileged",
                "pod-security.kubernetes.io/warn": "baseline",
                "app.kubernetes.io/part-of": "triton-platform",
            },
        }
    }


def time_slicing_config(replicas: int) -> str:
    """Device-plugin config file that advertises each GPU as ``replicas`` schedulable GPUs."""
    return yaml.safe_dump(
        {
            "version": "v1",
            "flags": {"migStrategy": "none"},
            "sharing": {
                "timeSlicing": {
                    # Keep the resource name nvidia.com/gpu so manifests do not change with sharing.
                    "renameByDefault": False,
                    # A pod asking for 2 slices would get no more GPU than with 1: refuse it instead.
                    "failRequestsGreaterThanOne": True,
                    "resources": [{"name": "nvidia.com/gpu", "replicas": replicas}],
                }
            },
        },
        sort_keys=False,
    )


def device_plugin_values(settings: DevicePluginSettings) -> dict[str, Any]:
    values: dict[str, Any] = {
        # The chart's default affinity needs Node Feature Discovery labels; our GPU nodes carry the
        # SKU label from their node group instead.
        "affinity": scheduling.GPU_NODE_AFFINITY,
        "tolerations": [scheduling.GPU_TOLERATION],
        "priorityClassName": "system-node-critical",
        "gfd": {"enabled": False},
        "nfd": {"enabled": False},
        # Per GPU node, counted in the DaemonSet reserve of platform_spec.gpus.allocatable.
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    }
    if settings.sharing == "time-slicing":
        # Time-slicing shares compute without memory isolation: fine for dev economy, not for prod.
        values["config"] = {"map": {"default": time_slicing_config(settings.replicas)}, "default": "default"}
    return values


def dcgm_exporter_values() -> dict[str, Any]:
    return {
        "serviceMonitor": {"enabled": False},
        "affinity": scheduling.GPU_NODE_AFFINITY,
        "tolerations": [scheduling.GPU_TOLERATION],
        "priorityClassName": "system-node-critical",
        "service": {"port": DCGM_EXPORTER_PORT},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    }


@dataclass(frozen=True)
class GpuSoftwareArgs:
    device_plugin: DevicePluginSettings
    k8s_provider: k8s.Provider
    # Resources the releases wait for (the GPU node groups), so their readiness checks see nodes.
    after: Sequence[pulumi.Resource] = field(default_factory=list)


class GpuSoftware(pulumi.ComponentResource):
    """The ``gpu-system`` namespace, the NVIDIA device plugin and the DCGM exporter."""

    def __init__(self, name: str, args: GpuSoftwareArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("platform:gpu:GpuSoftware", name, None, opts)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.k8s_provider)

        namespace = k8s.core.v1.Namespace(f"{name}-namespace", **namespace_manifest(), opts=on_cluster)
        # Releases take the namespace from this Output, so they wait for the Namespace to exist.
        self.namespace: pulumi.Output[str] = namespace.metadata.name
        release_opts = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=list(args.after)))

        self.device_plugin = self._release(
            f"{name}-device-plugin",
            DEVICE_PLUGIN_RELEASE,
            versions.NVIDIA_DEVICE_PLUGIN_CHART,
            device_plugin_values(args.device_plugin),
            release_opts,
        )
        self.dcgm_exporter = self._release(
            f"{name}-dcgm-exporter",
            DCGM_EXPORTER_RELEASE,
            versions.DCGM_EXPORTER_CHART,
            dcgm_exporter_values(),
            release_opts,
        )
        self.register_outputs({"namespace": self.namespace})

    def _release(
        self, name: str, release: str, chart: dict[str, str], values: dict[str, Any], opts: pulumi.ResourceOptions
    ) -> k8s.helm.v3.Release:
        return k8s.helm.v3.Release(
            name,
            name=release,  # fixed release name: object names stay stable for monitoring selectors
            **release_chart(chart),
            namespace=self.namespace,
            values=values,
            cleanup_on_fail=True,
            max_history=10,
            timeout=600,
            opts=opts,
        )
