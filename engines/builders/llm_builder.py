"""LLM target: a Hugging Face checkpoint -> (FP8-quantized) checkpoint + TensorRT-LLM serving config.

Runs in the Triton TensorRT-LLM image of the serving release (it carries torch, transformers,
ModelOpt and TensorRT-LLM at the versions the server uses), on the target GPU pool, through the
Kubernetes Job runner; nothing here is imported until a build runs. Settings used: ``precision``
(fp8: ModelOpt post-training quantization calibrated on the pinned text set, exported as an HF
checkpoint TensorRT-LLM's PyTorch backend loads directly; bf16/fp16: the checkpoint re-saved in that
dtype), ``llm`` (serving limits, KV cache dtype, LoRA capacity) written to ``llm_api_options.yaml``.
After export the checkpoint is loaded once with ``tensorrt_llm.LLM`` and asked for a few tokens, so an
artifact that cannot be served is never published.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from engines.builders.base import BuildContext, BuildError, BuildOutput
from engines.builders.llm_serving_config import OPTIONS_FILE, llm_api_options, options_yaml
from engines.spec import EngineSpec

CODE_VERSION = "llm-1"
CALIBRATION_MAX_TOKENS = 512


def runtime_problems(spec: EngineSpec, tensorrt_llm_version: str, cuda: str | None) -> list[str]:
    """Why this image cannot prepare ``spec``'s artifact: the artifact is keyed for one TensorRT-LLM and CUDA
    (``platform_spec.versions.LLM_RUNTIME``), and one prepared elsewhere would be served under a false key."""
    problems = []
    want = spec.target.runtime_version
    if not (tensorrt_llm_version == want or tensorrt_llm_version.startswith(want + ".")):
        problems.append(f"this image has TensorRT-LLM {tensorrt_llm_version} but the artifact is keyed for {want}")
    want_cuda = spec.target.cuda_version
    if want_cuda and (cuda is None or want_cuda.split(".")[:2] != cuda.split(".")[:2]):
        problems.append(f"this image's torch runs CUDA {cuda} but the artifact is keyed for CUDA {want_cuda}")
    if problems:
        problems.append("build in platform_spec.versions.TRITON_TRTLLM_IMAGE (the LLM pool's serving image)")
    return problems


class TensorRtLlmBuilder:
    name = "tensorrt_llm"
    code_version = CODE_VERSION

    def build(self, spec: EngineSpec, source: Path, ctx: BuildContext) -> BuildOutput:
        log = ctx.log
        try:
            torch = importlib.import_module("torch")
            transformers = importlib.import_module("transformers")
        except ImportError:
            raise BuildError("the LLM builder needs torch and transformers (the Triton TRT-LLM image)") from None
        if not torch.cuda.is_available():
            raise BuildError(
                f"{spec.model}: the LLM builder quantizes on the target GPU and found none; run it through the "
                "Kubernetes runner on the LLM pool",
                log.text(),
            )
        if not (source / "config.json").is_file():
            raise BuildError(f"{spec.source.uri} is not a Hugging Face checkpoint (no config.json)", log.text())
        try:
            tensorrt_llm_version = importlib.import_module("tensorrt_llm").__version__
        except ImportError:
            raise BuildError("the LLM builder needs tensorrt_llm (the Triton TRT-LLM image)") from None
        problems = runtime_problems(spec, tensorrt_llm_version, torch.version.cuda)
        if problems:
            raise BuildError(f"{spec.model}: " + "; ".join(problems), log.text())

        dtype = torch.float16 if spec.settings.precision == "fp16" else torch.bfloat16
        log.info(f"loading {spec.model} from {source} in {dtype}")
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(source))
        model = transformers.AutoModelForCausalLM.from_pretrained(str(source), torch_dtype=dtype, device_map="cuda")
        model.eval()
        versions = {"torch": torch.__version__, "transformers": transformers.__version__}

        out = ctx.output_dir
        if spec.settings.precision == "fp8":
            versions.update(self._quantize_fp8(spec, model, tokenizer, ctx, torch))
            from modelopt.torch.export import export_hf_checkpoint

            # Writes the FP8 weights, scales and hf_quant_config.json TensorRT-LLM reads.
            export_hf_checkpoint(model, export_dir=str(out))
        else:
            model.save_pretrained(str(out), safe_serialization=True)
        tokenizer.save_pretrained(str(out))
        del model
        torch.cuda.empty_cache()

        options = llm_api_options(spec)
        (out / OPTIONS_FILE).write_text(options_yaml(options))
        versions.update(self._smoke_test(spec, out, options, ctx))
        return BuildOutput(".", versions)

    @staticmethod
    def _quantize_fp8(spec: EngineSpec, model, tokenizer, ctx: BuildContext, torch) -> dict[str, str]:
        import modelopt
        import modelopt.torch.quantization as mtq

        cal = spec.settings.calibration
        path = ctx.fetch(cal.data, "calibration.data_uri")
        texts = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
        texts = texts[: spec.settings.llm.calibration_samples]
        if not texts:
            raise BuildError(f"calibration text {cal.data.uri} holds no samples (one per line)", ctx.log.text())
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

        def forward_loop(m):
            for start in range(0, len(texts), 8):
                batch = tokenizer(
                    texts[start : start + 8],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=CALIBRATION_MAX_TOKENS,
                ).to("cuda")
                with torch.no_grad():
                    m(**batch)

        ctx.log.info(f"ModelOpt FP8 post-training quantization over {len(texts)} samples")
        mtq.quantize(model, mtq.FP8_DEFAULT_CFG, forward_loop)
        return {"modelopt": modelopt.__version__}

    @staticmethod
    def _smoke_test(spec: EngineSpec, checkpoint: Path, options: dict, ctx: BuildContext) -> dict[str, str]:
        try:
            tensorrt_llm = importlib.import_module("tensorrt_llm")
        except ImportError:
            raise BuildError("the LLM builder needs tensorrt_llm to verify the checkpoint loads") from None
        from tensorrt_llm import LLM, SamplingParams
        from tensorrt_llm.llmapi import KvCacheConfig

        kwargs = {k: v for k, v in options.items() if k not in ("kv_cache_config", "lora_config")}
        kwargs["kv_cache_config"] = KvCacheConfig(**options["kv_cache_config"])
        llm = LLM(model=str(checkpoint), **kwargs)
        try:
            outputs = llm.generate(["The capital of France is"], SamplingParams(max_tokens=4))
            text = outputs[0].outputs[0].text
        finally:
            llm.shutdown()
        ctx.log.info(f"TensorRT-LLM {tensorrt_llm.__version__} loaded the checkpoint and generated {text!r}")
        return {"tensorrt_llm": tensorrt_llm.__version__}
