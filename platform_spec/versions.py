"""Every pinned version of the platform, in one place.

The GPU runtimes come as one version set: each NGC Triton image with what NVIDIA ships inside it (Triton, Python,
CUDA, TensorRT, TensorRT-LLM, torch, the driver branch it needs), copied from NVIDIA's published tables, never
guessed. A TensorRT engine deserialises only under the TensorRT that built it and a TensorRT-LLM artifact is valid
for one TensorRT-LLM/CUDA pair, so the engine builders and the serving models check at start that they run inside
these versions, and every engine's content key carries them (``engines.spec_fields.Target``): a bump here is a new
artifact in ``pulumi preview``. Bump a row only from NVIDIA's table for the new tag; ``tests/test_version_set.py``
checks that the rows agree with each other and with the GPU nodes' driver.
"""

from __future__ import annotations

from dataclasses import dataclass


def ngc_release(image: str) -> str:
    """The NGC release of an image reference: ``nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3`` -> ``25.12``."""
    return image.rsplit(":", 1)[1].split("-", 1)[0]


@dataclass(frozen=True)
class Runtime:
    """One NGC Triton image and the versions inside it."""

    image: str
    triton: str  # Triton server version (the tritonclient the image's own clients pin)
    python: str
    cuda: str
    driver_branch: int  # the NVIDIA driver branch (major) the image's CUDA needs
    tensorrt: str
    tensorrt_llm: str | None = None
    torch: str | None = None
    source: str = ""

    @property
    def release(self) -> str:
        return ngc_release(self.image)


# The LLM pool: Triton's release compatibility matrix, container trtllm-python-py3, row 25.12 (the first with
# TensorRT-LLM 1.1.0; 25.10's trtllm image ships TensorRT-LLM 1.0.0 on CUDA 12.9.1, and 25.11's a 1.0.3 build).
LLM_RUNTIME = Runtime(
    image="nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3",
    triton="2.64.0",
    python="3.12.3",
    cuda="13.0.2.006",
    driver_branch=580,  # the row lists CUDA driver 580.95.05
    tensorrt="10.13.3.9",
    tensorrt_llm="1.1.0",
    torch="2.9.0a0+145a3a7bda.nv25.10",
    source="docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/introduction/compatibility.html",
)
# The speech pool (TensorRT engines + Python glue): release 25.10, "based on CUDA 13.0.2.006" (its release notes) --
# the CUDA of the LLM image, so both pools run one CUDA and one TensorRT (10.13.3, the release built for CUDA 13.0)
# on one driver branch. 25.12's plain image moved to CUDA 13.1 and a TensorRT its notes do not name here: not taken.
SPEECH_RUNTIME = Runtime(
    image="nvcr.io/nvidia/tritonserver:25.10-py3",
    triton="2.62.0",
    python="3.12.3",
    cuda="13.0.2.006",
    driver_branch=580,  # CUDA 13.0 needs the R580 driver
    tensorrt="10.13.3.9",
    source="docs.nvidia.com/deeplearning/triton-inference-server/release-notes/rel-25-10.html",
)
# EKS's AL2023 NVIDIA AMIs install the 580 driver branch (awslabs/amazon-eks-ami#2470: the R580 upgrade, done for
# Kubernetes 1.34 first), which the GPU nodes run; a runtime needing a later branch would not start on them.
GPU_AMI_DRIVER_BRANCH = 580

# GPU pool role -> the runtime its Triton server runs.
RUNTIMES = {"speech": SPEECH_RUNTIME, "llm": LLM_RUNTIME}
TRITON_IMAGE = SPEECH_RUNTIME.image
TRITON_TRTLLM_IMAGE = LLM_RUNTIME.image
TENSORRT_VERSION = SPEECH_RUNTIME.tensorrt
# Engines are built in the TensorRT image of the speech runtime's release (same TensorRT and CUDA).
TENSORRT_BUILD_IMAGE = f"nvcr.io/nvidia/tensorrt:{SPEECH_RUNTIME.release}-py3"
TENSORRT_LLM_VERSION = LLM_RUNTIME.tensorrt_llm
CUDA_VERSION = SPEECH_RUNTIME.cuda

# EKS
KUBERNETES_VERSION = "1.34"
GPU_AMI_TYPE = "AL2023_x86_64_NVIDIA"
SYSTEM_AMI_TYPE = "AL2023_x86_64_STANDARD"
# Core add-ons pinned per Kubernetes minor (aws eks describe-addon-versions).
EKS_ADDONS = {
    "vpc-cni": "v1.20.4-eksbuild.1",
    "coredns": "v1.12.4-eksbuild.1",
    "kube-proxy": "v1.34.1-eksbuild.2",
    "aws-ebs-csi-driver": "v1.51.1-eksbuild.1",
    "eks-pod-identity-agent": "v1.3.9-eksbuild.3",
}

# Helm charts: the official charts at these versions, vendored as archives under charts/ (charts/PROVENANCE.md),
# which is what the program deploys and the tests render; "repo" is where an upgrade comes from.
NVIDIA_DEVICE_PLUGIN_CHART = {
    "chart": "nvidia-device-plugin",
    "version": "0.18.0",
    "repo": "https://nvidia.github.io/k8s-device-plugin",
    "archive": "charts/nvidia-device-plugin-0.18.0.tgz",
    "sha256": "15369191063a1704b542509e0f47287ea45dc528b6548288524e29f75c76e5ae",
}
DCGM_EXPORTER_CHART = {
    "chart": "dcgm-exporter",
    "version": "4.6.0",
    "repo": "https://nvidia.github.io/dcgm-exporter/helm-charts",
    "archive": "charts/dcgm-exporter-4.6.0.tgz",
    "sha256": "d9ae9d6b4973159fa20717007736094e6460fa621bfec6300678629cd9b0c23b",
}
KUBE_PROMETHEUS_STACK_CHART = {
    "chart": "kube-prometheus-stack",
    "version": "79.5.0",
    "repo": "https://prometheus-community.github.io/helm-charts",
    "archive": "charts/kube-prometheus-stack-79.5.0.tgz",
    "sha256": "035342565ccc8020b379dad30a1745d50d8eac2196b6c82c7a0a5a0022f88bdc",
}
# KEDA scales the Triton pools on their SLO signals (ScaledObjects with Prometheus triggers); it replaced
# prometheus-adapter, which upstream retires in KEDA's favour.
KEDA_CHART = {
    "chart": "keda",
    "version": "2.20.2",
    "repo": "https://kedacore.github.io/charts",
    "archive": "charts/keda-2.20.2.tgz",
    "sha256": "9e8fd917a6f824ad1a803dc928ac62e80e9e34905038ad6223ad65b77377bf0f",
}
CLUSTER_AUTOSCALER_CHART = {
    "chart": "cluster-autoscaler",
    "version": "9.52.1",
    "repo": "https://kubernetes.github.io/autoscaler",
    "archive": "charts/cluster-autoscaler-9.52.1.tgz",
    "sha256": "38949f7fafae675016e8710ccddcf493d081e2266644ddfd154697f1463103b4",
}
