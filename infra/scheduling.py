"""Where pods land: the node labels and the GPU taint every GPU node group carries.

Workloads (Triton deployments, engine-build Jobs, the GPU daemons) import these names instead of
spelling the strings again, so a label rename is one edit and a typo is an import error.
"""

from __future__ import annotations

from platform_spec.settings import GpuPool

# Node labels set on every managed node group (EKS applies them at node registration).
ROLE_LABEL = "platform.io/role"  # "system", or the pool's role: "llm" | "speech"
POOL_LABEL = "platform.io/pool"  # the pool name from the stack config, "system" for the CPU group
GPU_SKU_LABEL = "platform.io/gpu-sku"  # e.g. "h100"; engine builds select on it (an engine fits one GPU)
COMPUTE_CAPABILITY_LABEL = "platform.io/gpu-compute-capability"  # e.g. "9.0"
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"

SYSTEM_ROLE = "system"
SYSTEM_POOL = "system"

# GPU nodes repel everything that does not ask for a GPU, so add-ons and monitoring never take
# the memory or the PCIe bandwidth of an inference node.
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "true"
GPU_TAINT = {"key": GPU_TAINT_KEY, "value": GPU_TAINT_VALUE, "effect": "NO_SCHEDULE"}  # EKS API spelling
GPU_TOLERATION = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}  # Kubernetes spelling

# Node affinity that matches every GPU node and nothing else (for DaemonSets that serve all GPU pools).
GPU_NODE_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": GPU_SKU_LABEL, "operator": "Exists"}]}]
        }
    }
}


def system_node_labels() -> dict[str, str]:
    return {ROLE_LABEL: SYSTEM_ROLE, POOL_LABEL: SYSTEM_POOL}


def gpu_node_labels(pool: GpuPool) -> dict[str, str]:
    """The pool's own labels plus the platform labels; the platform labels win on a clash because
    schedulers and engine builds rely on them meaning exactly one thing."""
    return {
        **pool.labels,
        ROLE_LABEL: pool.role,
        POOL_LABEL: pool.name,
        GPU_SKU_LABEL: pool.gpu_sku,
        COMPUTE_CAPABILITY_LABEL: pool.compute_capability,
        # Cluster Autoscaler's GPU label on AWS: with it the autoscaler waits for a new node's GPUs to become
        # allocatable (driver, device plugin) instead of launching more nodes for the same pending pods.
        ACCELERATOR_LABEL: f"nvidia-{pool.gpu_sku}",
    }


def gpu_pool_selector(pool: GpuPool) -> dict[str, str]:
    """nodeSelector that pins a pod to one GPU pool."""
    return {POOL_LABEL: pool.name, GPU_SKU_LABEL: pool.gpu_sku}
