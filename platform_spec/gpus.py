"""Facts about the GPU instance families the platform can run on.

An engine is valid for one compute capability, so every GPU pool's SKU maps to exactly one
compute capability here, and a pool's instance types must all carry that SKU.
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


def instance_family(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def sku_of_instance(instance_type: str) -> str | None:
    """The GPU SKU an instance type carries, or None for a non-GPU (or unknown) type."""
    return INSTANCE_FAMILY_SKU.get(instance_family(instance_type))
