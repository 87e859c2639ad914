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

# Helm charts (official repositories).
NVIDIA_DEVICE_PLUGIN_CHART = {
    "chart": "nvidia-device-plugin",
    "version": "0.18.0",
    "repo": "https://nvidia.github.io/k8s-device-plugin",
}
DCGM_EXPORTER_CHART = {
    "chart": "dcgm-exporter",
    "version": "4.6.0",
    "repo": "https://nvidia.github.io/dcgm-exporter/helm-charts",
}
KUBE_PROMETHEUS_STACK_CHART = {
    "chart": "kube-prometheus-stack",
    "version": "79.5.0",
    "repo": "https://prometheus-community.github.io/helm-charts",
}
PROMETHEUS_ADAPTER_CHART = {
    "chart": "prometheus-adapter",
    "version": "5.2.0",
    "repo": "https://prometheus-community.github.io/helm-charts",
}
CLUSTER_AUTOSCALER_CHART = {
    "chart": "cluster-autoscaler",
    "version": "9.52.1",
    "repo": "https://kubernetes.github.io/autoscaler",
}
