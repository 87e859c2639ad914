"""Builders that run for real here: ONNX Runtime (fp32/fp16/int8), the PyTorch export helper, LoRA adapters."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from engines.builders import spec_for
from engines.builders.base import BuildError
from engines.builders.llm_serving_config import llm_api_options, options_yaml, triton_model_yaml
from engines.export import ExportError, _check_dynamic_axes, export_onnx
from engines.onnx_checks import run_onnx
from engines.runners.local import LocalRunner
from engines.spec import BuilderSettings, Calibration, LlmSettings, SourceRef, Target
from engines.store import LocalStore
from platform_spec.digests import file_sha256, tree_digest
from tests.engines.conftest import cpu_spec


def _outputs(path, batch=5):
    x = {"x": np.random.default_rng(3).standard_normal((batch, 16)).astype(np.float32)}
    return run_onnx(path, x)[1][0]


@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", 1e-5), ("fp16", 2e-2)])
def test_float_builds_match_the_source(mlp_onnx, store_dir, precision, tolerance):
    store = LocalStore(store_dir)
    meta = LocalRunner().run(cpu_spec(mlp_onnx, precision=precision), store)
    built = store.artifact_path(meta.key) / "model.onnx"
    np.testing.assert_allclose(_outputs(built), _outputs(mlp_onnx), atol=tolerance, rtol=tolerance)
    assert f"parity vs source ({precision})" in meta.log_excerpt


def test_int8_dynamic_and_static_quantization(mlp_onnx, store_dir, tmp_path):
    store = LocalStore(store_dir)
    dynamic = LocalRunner().run(cpu_spec(mlp_onnx, precision="int8"), store)
    assert "dynamic activation scales" in dynamic.log_excerpt

    batches = np.random.default_rng(0).standard_normal((8, 4, 16)).astype(np.float32)
    np.savez(tmp_path / "calibration.npz", x=batches)
    data = SourceRef((tmp_path / "calibration.npz").as_uri(), file_sha256(tmp_path / "calibration.npz"), "calibration")
    static = LocalRunner().run(cpu_spec(mlp_onnx, precision="int8", calibration=Calibration("calibrator", data)), store)
    assert "static scales from 8 calibration batches" in static.log_excerpt
    assert static.key != dynamic.key
    for meta in (dynamic, static):
        built = store.artifact_path(meta.key) / "model.onnx"
        ref, got = _outputs(mlp_onnx), _outputs(built)
        cosine = float((ref.ravel() @ got.ravel()) / (np.linalg.norm(ref) * np.linalg.norm(got)))
        assert cosine > 0.98


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv1d(4, 8, 3, padding=1)
        self.proj = torch.nn.Linear(8, 2)

    def forward(self, frames):  # [batch, 4, time] -> [batch, time, 2]
        return self.proj(torch.relu(self.conv(frames)).transpose(1, 2))


def test_export_helper_makes_a_dynamic_checked_matching_onnx_that_then_builds(tmp_path, store_dir):
    path = tmp_path / "tiny.onnx"
    report = export_onnx(
        Tiny(),
        (torch.randn(2, 4, 10),),
        path,
        ["frames"],
        ["scores"],
        {"frames": {0: "batch", 2: "time"}, "scores": {0: "batch", 1: "time"}},
    )
    assert report.sha256 == file_sha256(path) and report.parity.ok
    # Dynamic axes really are dynamic: other batch and time sizes run and match PyTorch.
    x = torch.randn(3, 4, 17)
    names, got = run_onnx(path, {"frames": x.numpy()})
    np.testing.assert_allclose(got[0], Tiny().eval()(x).detach().numpy(), atol=1e-5)

    from engines.spec import InputProfile

    profiles = (InputProfile("frames", (1, 4, 1), (2, 4, 50), (8, 4, 400)),)
    meta = LocalRunner().run(cpu_spec(path, model="tiny", profiles=profiles), LocalStore(store_dir))
    assert meta.primary == "model.onnx"

    # An axis the module specialized on (exported with a fixed size) is refused, naming the axis.
    import onnx

    fixed = onnx.load(str(tmp_path / "tiny.onnx"))
    fixed.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 10
    with pytest.raises(ExportError, match="frames axis 2 was exported as a fixed size"):
        _check_dynamic_axes(fixed, {"frames": {0: "batch", 2: "time"}})


def _adapter(path, rank=8, modules=("q_proj", "v_proj"), bad_rank=False):
    path.mkdir()
    (path / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": rank, "lora_alpha": 16, "target_modules": list(modules)})
    )
    rng = np.random.default_rng(0)
    tensors = {}
    for layer in range(2):
        for m in modules:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{m}"
            tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((rank, 64)).astype(np.float32)
            tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((64, rank + (1 if bad_rank else 0))).astype(
                np.float32
            )
    save_file(tensors, str(path / "adapter_model.safetensors"))
    return path


def lora_spec(path, max_rank=64):
    return spec_for(
        "llm_support_lora",
        "lora",
        SourceRef(path.as_uri(), tree_digest(path), "lora_adapter"),
        Target.for_gpu("h100", "tensorrt_llm"),
        BuilderSettings(precision="fp8", llm=LlmSettings(max_lora_rank=max_rank, base_model_key="e" * 64)),
    )


def test_lora_adapter_is_validated_and_published_as_its_own_artifact(tmp_path, store_dir):
    store = LocalStore(store_dir)
    meta = LocalRunner().run(lora_spec(_adapter(tmp_path / "adapter")), store)
    described = json.loads((store.artifact_path(meta.key) / "lora.json").read_text())
    assert described["base_model_key"] == "e" * 64 and described["rank"] == 8
    assert described["trtllm_target_modules"] == ["attn_q", "attn_v"]
    assert {f.path for f in meta.files} >= {"adapter_config.json", "adapter_model.safetensors", "lora.json"}

    with pytest.raises(BuildError, match="LoRA rank 8; the server allows 1..4"):
        LocalRunner().run(lora_spec(_adapter(tmp_path / "a2"), max_rank=4), store)
    with pytest.raises(BuildError, match="disagree with rank 8"):
        LocalRunner().run(lora_spec(_adapter(tmp_path / "a3", bad_rank=True)), store)
    with pytest.raises(BuildError, match=r"targets modules \['lm_head'\]"):
        LocalRunner().run(lora_spec(_adapter(tmp_path / "a4", modules=("q_proj", "lm_head"))), store)
    assert store.keys() == [meta.key]


def test_lora_mlp_projections_map_as_tensorrt_llm_maps_them(tmp_path, store_dir):
    """TensorRT-LLM's hf_modules_to_trtllm_modules: gate_proj -> mlp_h_to_4h, up_proj -> mlp_gate (not the reverse)."""
    store = LocalStore(store_dir)
    adapter = _adapter(tmp_path / "mlp", modules=("gate_proj", "up_proj", "down_proj"))
    described = json.loads(
        (store.artifact_path(LocalRunner().run(lora_spec(adapter), store).key) / "lora.json").read_text()
    )
    assert described["trtllm_module_of"] == {
        "down_proj": "mlp_4h_to_h", "gate_proj": "mlp_h_to_4h", "up_proj": "mlp_gate",
    }  # fmt: skip


def test_llm_serving_config_for_the_llm_api_and_triton():
    llm = LlmSettings(max_batch_size=32, kv_cache_dtype="fp8", enable_lora=True, max_lora_rank=16, max_loras=2)
    spec = spec_for(
        "llm_chat",
        "tensorrt_llm",
        SourceRef("store://sources/llama/", "f" * 64, "hf_checkpoint"),
        Target.for_gpu("h100", "tensorrt_llm"),
        BuilderSettings(precision="bf16", llm=llm),
    )
    options = llm_api_options(spec)
    assert options["backend"] == "pytorch" and options["max_batch_size"] == 32
    assert options["kv_cache_config"] == {"free_gpu_memory_fraction": 0.85, "dtype": "fp8"}
    assert options["lora_config"] == {
        "max_lora_rank": 16,
        "max_loras": 2,
        "max_cpu_loras": 2,
        "lora_target_modules": ["attn_q", "attn_k", "attn_v"],
    }
    import yaml

    document = yaml.safe_load(triton_model_yaml("/models/llm_chat/1/checkpoint", options))
    assert document["model"] == "/models/llm_chat/1/checkpoint" and document["backend"] == "pytorch"
    assert document["triton_config"] == {"max_batch_size": 0, "decoupled": True}
    assert yaml.safe_load(options_yaml(options)) == options


def test_llm_builder_says_it_needs_the_gpu_image(tmp_path, store_dir):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    spec = spec_for(
        "llm_chat",
        "tensorrt_llm",
        SourceRef(checkpoint.as_uri(), tree_digest(checkpoint), "hf_checkpoint"),
        Target.for_gpu("h100", "tensorrt_llm"),
        BuilderSettings(precision="bf16", llm=LlmSettings()),
    )
    with pytest.raises(BuildError, match="found none; run it through the Kubernetes runner"):
        LocalRunner().run(spec, LocalStore(store_dir))


def test_llm_builder_refuses_an_image_of_another_tensorrt_llm_or_cuda():
    from engines.builders.llm_builder import runtime_problems
    from platform_spec import versions

    spec = spec_for(
        "llm_chat",
        "tensorrt_llm",
        SourceRef("store://sources/llama/", "f" * 64, "hf_checkpoint"),
        Target.for_gpu("h100", "tensorrt_llm"),
        BuilderSettings(precision="fp8", llm=LlmSettings()),
    )
    assert runtime_problems(spec, versions.TENSORRT_LLM_VERSION, "13.0") == []
    problems = runtime_problems(spec, "1.0.0", "12.9")
    assert (
        problems[0]
        == f"this image has TensorRT-LLM 1.0.0 but the artifact is keyed for {versions.TENSORRT_LLM_VERSION}"
    )
    assert problems[1] == "this image's torch runs CUDA 12.9 but the artifact is keyed for CUDA 13.0.2.006"
    assert "TRITON_TRTLLM_IMAGE" in problems[-1]
