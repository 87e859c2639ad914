"""A Llama-3.1-layout checkpoint directory without weights: what the gpu LLM model reads from its checkpoint.

``config.json`` (the architecture: Llama-3.1-8B's shape unless told), ``hf_quant_config.json`` for an FP8 checkpoint
(ModelOpt's marker, FP8 weights and FP8 KV cache), the tokenizer files (byte-level BPE over the 256 bytes plus Llama
3's special tokens, not Llama's 128k vocabulary) with the chat template, and the build's ``llm_api_options.yaml``.
Shared by the CPU tests and the GPU stand-in repository (tests/gpu_standins/repository.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from engines.builders.llm_serving_config import OPTIONS_FILE

SPECIAL = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
# Llama 3.1's chat layout (its template, without the tool-calling and date branches).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
# Llama-3.1-8B's config.json (the fields a Llama decoder needs).
LLAMA_3_1_8B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 128256,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-05,
    "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
}


def write_checkpoint(
    directory: Path,
    chat_template: str | None,
    options_yaml: str | None,
    *,
    architecture: dict | None = None,
    fp8: bool = False,
) -> None:
    directory.mkdir(parents=True)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIAL)
    tokenizer.save(str(directory / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": SPECIAL[0], "eos_token": SPECIAL[3]}
    if chat_template is not None:
        config["chat_template"] = chat_template
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    (directory / "config.json").write_text(json.dumps(architecture or LLAMA_3_1_8B, indent=2))
    if fp8:
        quant = {"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}}
        (directory / "hf_quant_config.json").write_text(json.dumps(quant, indent=2))
    if options_yaml is not None:
        (directory / OPTIONS_FILE).write_text(options_yaml)


def build_options(spec, gpu_sku: str) -> str:
    """The LLM API options the engine build writes beside the checkpoint of ``spec`` for ``gpu_sku``."""
    from engines.builders import spec_for
    from engines.builders.llm_serving_config import llm_api_options, options_yaml
    from engines.catalog_engines import llm_settings
    from engines.spec import BuilderSettings, SourceRef, Target

    engine = spec_for(spec.name, "tensorrt_llm", SourceRef("store://sources/llama/", "f" * 64, "hf_checkpoint"),
                      Target.for_gpu(gpu_sku, "tensorrt_llm"),
                      BuilderSettings(precision=spec.precision_in_use, llm=llm_settings(spec)))  # fmt: skip
    return options_yaml(llm_api_options(engine))
