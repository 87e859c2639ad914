"""Every pinned version of the platform, in one place.

The Triton image tag and the TensorRT version inside it travel together: a TensorRT engine
deserialises only under the TensorRT version that built it, so the engine builders read
``TENSORRT_VERSION`` from here and the serving image is ``TRITON_IMAGE``. Bump them together,
from the Triton release notes of the new tag, never one alone.
"""

from __future__ import annotations

# NVIDIA Triton Inference Server container release 25.10 (Triton 2.62.0).
TRITON_RELEASE = "25.10"
TRITON_SERVER_VERSION = "2.62.0"
TRITON_IMAGE = f"nvcr.io/nvidia/tritonserver:{TRITON_RELEASE}-py3"
# The TensorRT-LLM flavour of the same release serves the LLM pool.
TRITON_TRTLLM_IMAGE = f"nvcr.io/nvidia/tritonserver:{TRITON_RELEASE}-trtllm-python-py3"
# TensorRT shipped inside TRITON_IMAGE; engines are built in the TensorRT image of the same release.
TENSORRT_VERSION = "10.13.3"
TENSORRT_BUILD_IMAGE = f"nvcr.io/nvidia/tensorrt:{TRITON_RELEASE}-py3"
# TensorRT-LLM inside TRITON_TRTLLM_IMAGE (LLM API, PyTorch backend).
TENSORRT_LLM_VERSION = "1.1.0"

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
