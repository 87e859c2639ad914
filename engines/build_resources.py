"""What one engine build needs from the node it runs on, by builder: CPU, memory and scratch disk.

The Kubernetes runner requests exactly this (memory limit = request), so a build lands only on a node
that can hold it, and the program checks before anything is declared that every instance type of the
engine's pool can (``infra.stack_plan``). Sizes are for the largest model each builder handles here:
TensorRT plans of the speech and embedding models (ONNX parse, tactic search, timing cache); the 8B
LLM's FP8 quantization with ModelOpt (the BF16 checkpoint, 16 GB, is loaded in host memory next to the
calibration run; source, output and Hugging Face cache on scratch); LoRA adapter conversion.
"""

from __future__ import annotations

from dataclasses import dataclass

from engines.spec import EngineSpec


@dataclass(frozen=True)
class BuildResources:
    cpu_millicores: int
    memory_mib: int
    scratch_gib: int

    def job_settings(self) -> dict[str, str]:
        """The ``cpu``/``memory``/``scratch`` keys of the Kubernetes runner's settings."""
        return {"cpu": f"{self.cpu_millicores}m", "memory": f"{self.memory_mib}Mi", "scratch": f"{self.scratch_gib}Gi"}

    def describe(self) -> str:
        return (f"{self.cpu_millicores / 1000:g} CPU, {self.memory_mib / 1024:g} GiB memory, "
                f"{self.scratch_gib} GiB scratch")  # fmt: skip


BUILDER_RESOURCES: dict[str, BuildResources] = {
    "tensorrt": BuildResources(2000, 12 * 1024, 30),
    "tensorrt_llm": BuildResources(4000, 48 * 1024, 80),
    "lora": BuildResources(1000, 4 * 1024, 10),
    "onnxruntime": BuildResources(1000, 4 * 1024, 10),
}


def build_resources(spec: EngineSpec) -> BuildResources:
    return BUILDER_RESOURCES[spec.builder]
