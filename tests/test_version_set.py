"""The GPU runtimes are one consistent version set (platform_spec/versions.py), and everything that names a version
takes it from there: the rows agree with each other and with the GPU nodes' driver, and engines are keyed by them."""

from __future__ import annotations

import re

from engines.spec_fields import Target
from platform_spec import versions


def test_both_pools_run_one_cuda_and_one_tensorrt():
    speech, llm = versions.SPEECH_RUNTIME, versions.LLM_RUNTIME
    assert speech.cuda == llm.cuda == versions.CUDA_VERSION
    assert speech.tensorrt == llm.tensorrt and speech.tensorrt == versions.TENSORRT_VERSION
    assert llm.tensorrt_llm == versions.TENSORRT_LLM_VERSION and llm.torch


def test_the_gpu_nodes_driver_runs_every_runtime():
    for role, runtime in versions.RUNTIMES.items():
        assert runtime.driver_branch <= versions.GPU_AMI_DRIVER_BRANCH, (role, runtime.driver_branch)
        # CUDA 13.x needs the R580 driver or later.
        if runtime.cuda.startswith("13."):
            assert runtime.driver_branch >= 580, role


def test_images_are_the_runtimes_and_the_builders_share_their_release():
    assert versions.SPEECH_RUNTIME.image == versions.TRITON_IMAGE
    assert versions.LLM_RUNTIME.image == versions.TRITON_TRTLLM_IMAGE
    assert versions.TENSORRT_BUILD_IMAGE.endswith(f":{versions.SPEECH_RUNTIME.release}-py3")
    for runtime in versions.RUNTIMES.values():
        assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-(py3|trtllm-python-py3)", runtime.image)
        assert runtime.source.startswith("docs.nvidia.com/")


def test_an_engine_is_keyed_by_its_runtime_and_cuda():
    llm = Target.for_gpu("h100", "tensorrt_llm")
    assert (llm.runtime_version, llm.cuda_version, llm.serving_image) == (
        "1.1.0",
        versions.LLM_RUNTIME.cuda,
        versions.LLM_RUNTIME.image,
    )
    assert Target.for_gpu("l40s").cuda_version == versions.SPEECH_RUNTIME.cuda
