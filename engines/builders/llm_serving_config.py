"""The TensorRT-LLM serving configuration of an LLM artifact (LLM API, PyTorch backend).

TensorRT-LLM's engine workflow (``trtllm-build``) is deprecated; its PyTorch backend loads a
(quantized) Hugging Face checkpoint directly, configured through the LLM API's keyword arguments.
The same options serve three consumers:

* ``llm_api_options``: kwargs of ``tensorrt_llm.LLM`` and the ``--extra_llm_api_options`` YAML of
  ``trtllm-serve``;
* ``triton_model_yaml``: the ``model.yaml`` of Triton's TensorRT-LLM ``llmapi`` backend (the LLM
  kwargs plus a ``triton_config`` block), pointing at where the artifact is mounted in the pod.
"""

from __future__ import annotations

from typing import Any

from engines.spec import EngineSpec, LlmSettings

OPTIONS_FILE = "llm_api_options.yaml"

# Hugging Face projection names -> TensorRT-LLM LoRA module names (Llama family), as TensorRT-LLM's own
# ``hf_modules_to_trtllm_modules`` maps them: its gated MLP calls the gate projection ``mlp_h_to_4h`` and the up
# projection ``mlp_gate`` -- the reverse of what the names suggest, and an adapter mapped the other way round
# applies its gate deltas to the up projection.
HF_TO_TRTLLM_LORA_MODULES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_dense",
    "gate_proj": "mlp_h_to_4h",
    "up_proj": "mlp_gate",
    "down_proj": "mlp_4h_to_h",
}


def llm_api_options(spec: EngineSpec) -> dict[str, Any]:
    llm: LlmSettings = spec.settings.llm or LlmSettings()
    options: dict[str, Any] = {
        "backend": "pytorch",
        "tensor_parallel_size": llm.tensor_parallel_size,
        "pipeline_parallel_size": 1,
        "max_batch_size": llm.max_batch_size,
        "max_num_tokens": llm.max_num_tokens,
        "max_seq_len": llm.max_seq_len,
        "kv_cache_config": {
            "free_gpu_memory_fraction": llm.kv_cache_free_gpu_memory_fraction,
            # "auto" follows the checkpoint; "fp8" halves KV memory on Ada/Hopper.
            "dtype": llm.kv_cache_dtype,
        },
    }
    if llm.enable_lora:
        options["lora_config"] = {
            "max_lora_rank": llm.max_lora_rank,
            "max_loras": llm.max_loras,
            "max_cpu_loras": llm.max_loras,
            "lora_target_modules": list(llm.lora_target_modules) or ["attn_q", "attn_k", "attn_v"],
        }
    return options


def triton_model_yaml(checkpoint_path: str, options: dict[str, Any], decoupled: bool = True) -> str:
    """``model.yaml`` for Triton's ``llmapi`` backend; ``checkpoint_path`` is the artifact inside the pod."""
    import yaml

    document = {"model": checkpoint_path, **options, "triton_config": {"max_batch_size": 0, "decoupled": decoupled}}
    return yaml.safe_dump(document, sort_keys=False)


def options_yaml(options: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(options, sort_keys=False)
