"""LoRA adapters as their own artifacts: a validated PEFT adapter bound to one base checkpoint's key.

Two 8B variants can be one base model plus adapters: the base is an LLM artifact, each adapter an
artifact of this builder, keyed by its own digest and by ``llm.base_model_key``, so retraining an
adapter never rebuilds the base and a new base rebuilds (re-validates) its adapters. The build
checks what TensorRT-LLM's PyTorch backend will need at load time (PEFT LoRA config, rank within
the server's ``max_lora_rank``, supported target modules, A/B tensors of that rank) and writes
``lora.json`` with the names the serving config and requests use. Runs on any machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engines.builders.base import BuildContext, BuildError, BuildOutput
from engines.builders.llm_serving_config import HF_TO_TRTLLM_LORA_MODULES
from engines.spec import EngineSpec

CODE_VERSION = "lora-1"
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"


class LoraAdapterBuilder:
    name = "lora"
    code_version = CODE_VERSION

    def build(self, spec: EngineSpec, source: Path, ctx: BuildContext) -> BuildOutput:
        import safetensors
        from safetensors import safe_open

        log = ctx.log
        config_path, weights_path = source / CONFIG_NAME, source / WEIGHTS_NAME
        if not source.is_dir() or not config_path.is_file() or not weights_path.is_file():
            raise BuildError(
                f"{spec.source.uri} is not a PEFT LoRA adapter: it needs {CONFIG_NAME} and {WEIGHTS_NAME}", log.text()
            )
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise BuildError(f"{CONFIG_NAME} of {spec.model} is not JSON ({exc})", log.text()) from None
        if config.get("peft_type", "LORA") != "LORA":
            raise BuildError(f"{spec.model} is a {config.get('peft_type')} adapter; only LORA is served", log.text())
        rank = config.get("r")
        limit = spec.settings.llm.max_lora_rank
        if not isinstance(rank, int) or not 1 <= rank <= limit:
            raise BuildError(
                f"{spec.model} has LoRA rank {rank!r}; the server allows 1..{limit} (raise llm.max_lora_rank)",
                log.text(),
            )
        modules = config.get("target_modules") or []
        unknown = sorted(set(modules) - set(HF_TO_TRTLLM_LORA_MODULES))
        if not modules or unknown:
            raise BuildError(
                f"{spec.model} targets modules {unknown or modules}; "
                f"TensorRT-LLM maps {sorted(HF_TO_TRTLLM_LORA_MODULES)}",
                log.text(),
            )
        try:
            with safe_open(str(weights_path), framework="numpy") as weights:
                names = list(weights.keys())
                bad = []
                for name in names:
                    shape = weights.get_slice(name).get_shape()
                    if ".lora_A." in name and shape[0] != rank:
                        bad.append(f"{name} {shape}")
                    if ".lora_B." in name and shape[-1] != rank:
                        bad.append(f"{name} {shape}")
        except Exception as exc:  # noqa: BLE001  (safetensors raises SafetensorError and OSError)
            raise BuildError(f"{WEIGHTS_NAME} of {spec.model} is unreadable ({exc})", log.text()) from None
        if not any(".lora_A." in n for n in names) or not any(".lora_B." in n for n in names):
            raise BuildError(f"{WEIGHTS_NAME} of {spec.model} holds no lora_A/lora_B tensors", log.text())
        if bad:
            raise BuildError(f"tensors of {spec.model} disagree with rank {rank}: {bad[:5]}", log.text())

        shutil.copyfile(config_path, ctx.output_dir / CONFIG_NAME)
        shutil.copyfile(weights_path, ctx.output_dir / WEIGHTS_NAME)
        described = {
            "lora_name": spec.model,
            "base_model_key": spec.settings.llm.base_model_key,
            "rank": rank,
            "hf_target_modules": sorted(modules),
            "trtllm_target_modules": sorted(HF_TO_TRTLLM_LORA_MODULES[m] for m in modules),
            "trtllm_module_of": {m: HF_TO_TRTLLM_LORA_MODULES[m] for m in sorted(modules)},
            "lora_ckpt_source": "hf",
        }
        (ctx.output_dir / "lora.json").write_text(json.dumps(described, indent=2, sort_keys=True) + "\n")
        log.info(f"LoRA adapter {spec.model}: rank {rank}, {len(names)} tensors, modules {sorted(modules)}")
        return BuildOutput(".", {"safetensors": safetensors.__version__})
