"""Facts about the instance types the platform runs on: GPU SKUs, and what a node of each type offers pods.

An engine is valid for one compute capability, so every GPU pool's SKU maps to exactly one
compute capability here, and a pool's instance types must all carry that SKU.

``INSTANCE_TYPES`` holds each supported type's vCPUs, memory and GPUs (EC2's published sizes);
:func:`allocatable` turns one into what the kubelet of an EKS AL2023 node gives pods, after its own
reservation (EKS's formula), the eviction threshold and the platform's DaemonSets. Pod sizes and the
engine-build Jobs are checked against it before anything is declared.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuSku:
    name: str  # our label value, e.g. "h100"
    product: str  # NVIDIA product name as nvidia-smi reports it
    compute_capability: str  # "major.minor"
    memory_gib: int
    fp8: bool  # FP8 tensor cores (Ada, Hopper and later)


GPU_SKUS: dict[str, GpuSku] = {
    sku.name: sku
    for sku in (
        GpuSku("t4", "Tesla T4", "7.5", 16, False),
        GpuSku("a10g", "NVIDIA A10G", "8.6", 24, False),
        GpuSku("a100", "NVIDIA A100-SXM4-40GB", "8.0", 40, False),
        GpuSku("l4", "NVIDIA L4", "8.9", 24, True),
        GpuSku("l40s", "NVIDIA L40S", "8.9", 48, True),
        GpuSku("h100", "NVIDIA H100 80GB HBM3", "9.0", 80, True),
        GpuSku("h200", "NVIDIA H200", "9.0", 141, True),
    )
}

# EC2 instance family -> GPU SKU it carries.
INSTANCE_FAMILY_SKU: dict[str, str] = {
    "g4dn": "t4",
    "g5": "a10g",
    "p4d": "a100",
    "g6": "l4",
    "g6e": "l40s",
    "p5": "h100",
    "p5e": "h200",
    "p5en": "h200",
}


@dataclass(frozen=True)
class InstanceShape:
    vcpus: int
    memory_gib: int
    gpus: int = 0


def _family(name: str, sizes: dict[str, tuple[int, int, int]]) -> dict[str, InstanceShape]:
    return {f"{name}.{size}": InstanceShape(*shape) for size, shape in sizes.items()}


_G_SIZES = {"xlarge": (4, 16, 1), "2xlarge": (8, 32, 1), "4xlarge": (16, 64, 1), "8xlarge": (32, 128, 1),
            "12xlarge": (48, 192, 4), "16xlarge": (64, 256, 1), "24xlarge": (96, 384, 4), "48xlarge": (192, 768, 8)}
_M_SIZES = {"large": (2, 8, 0), "xlarge": (4, 16, 0), "2xlarge": (8, 32, 0), "4xlarge": (16, 64, 0),
            "8xlarge": (32, 128, 0)}
INSTANCE_TYPES: dict[str, InstanceShape] = {
    **_family("g4dn", {**{k: v for k, v in _G_SIZES.items() if k not in ("24xlarge", "48xlarge")},
                       "metal": (96, 384, 8)}),
    **_family("g5", _G_SIZES),
    **_family("g6", _G_SIZES),
    **_family("g6e", {size: (cpu, mem * 2, gpus) for size, (cpu, mem, gpus) in _G_SIZES.items()}),
    "p4d.24xlarge": InstanceShape(96, 1152, 8),
    "p5.48xlarge": InstanceShape(192, 2048, 8),
    "p5e.48xlarge": InstanceShape(192, 2048, 8),
    "p5en.48xlarge": InstanceShape(192, 2048, 8),
    **_family("m5", _M_SIZES),
    **_family("m6i", _M_SIZES),
    **_family("m7i", _M_SIZES),
}  # fmt: skip

# What the kubelet keeps for itself on an EKS AL2023 node: memory 255 MiB + 11 MiB per pod (for the
# largest max-pods the VPC CNI allows with prefix delegation, 110: an upper bound), CPU 6% of the first
# core, 1% of the second, 0.5% of the next two and 0.25% of the rest; plus the 100 MiB hard eviction
# threshold, and 10% of the root volume (nodefs.available).
MAX_PODS = 110
EVICTION_MEMORY_MIB = 100
NODEFS_EVICTION_SHARE = 0.10
# What the platform's own DaemonSets request on a GPU node (VPC CNI, kube-proxy, EBS CSI node, Pod
# Identity agent, device plugin, DCGM exporter, node exporter), rounded up.
DAEMONSET_CPU_MILLICORES = 500
DAEMONSET_MEMORY_MIB = 1024
# The container images a GPU node holds on its root volume: the TensorRT-LLM Triton image (~25 GB
# unpacked) and the TensorRT build image (~12 GB).
GPU_NODE_IMAGES_GIB = 40


@dataclass(frozen=True)
class NodeCapacity:
    """What pods of the platform can request on one node: after kubelet, eviction and DaemonSet reserves."""

    instance_type: str
    cpu_millicores: int
    memory_mib: int
    ephemeral_gib: int
    gpus: int

    def describe(self) -> str:
        return (f"{self.instance_type} ({self.cpu_millicores / 1000:g} CPU, {self.memory_mib / 1024:.1f} GiB memory, "
                f"{self.ephemeral_gib} GiB ephemeral storage)")  # fmt: skip


def _kube_reserved_cpu_millicores(vcpus: int) -> int:
    millicores = 60 + (10 if vcpus >= 2 else 0) + 5 * max(0, min(vcpus, 4) - 2) + 2.5 * max(0, vcpus - 4)
    return int(round(millicores))


def allocatable(instance_type: str, disk_gib: int) -> NodeCapacity:
    """What the platform's pods may request on a node of ``instance_type`` with a ``disk_gib`` root volume."""
    shape = INSTANCE_TYPES.get(instance_type)
    if shape is None:
        raise KeyError(f"instance type {instance_type!r} is not in platform_spec.gpus.INSTANCE_TYPES; add its shape")
    cpu = shape.vcpus * 1000 - _kube_reserved_cpu_millicores(shape.vcpus) - DAEMONSET_CPU_MILLICORES
    memory = shape.memory_gib * 1024 - (255 + 11 * MAX_PODS) - EVICTION_MEMORY_MIB - DAEMONSET_MEMORY_MIB
    images = GPU_NODE_IMAGES_GIB if shape.gpus else 0
    ephemeral = int(disk_gib * (1 - NODEFS_EVICTION_SHARE)) - images
    return NodeCapacity(instance_type, cpu, memory, max(0, ephemeral), shape.gpus)


def instance_family(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def sku_of_instance(instance_type: str) -> str | None:
    """The GPU SKU an instance type carries, or None for a non-GPU (or unknown) type."""
    return INSTANCE_FAMILY_SKU.get(instance_family(instance_type))
