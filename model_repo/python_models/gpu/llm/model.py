"""LLM on the gpu target: TensorRT-LLM's LLM API (PyTorch backend) inside Triton's Python backend.

TensorRT-LLM 1.x serves LLMs through its LLM API; one ``tensorrt_llm.LLM`` per model instance does
in-flight batching and paged KV cache itself (hence ``max_batch_size 0`` in the config) on the GPU the
instance group pins. Decoupled, same interface as the cpu model: ``TEXT_INPUT`` (+ optional
``MAX_TOKENS``, ``TEMPERATURE``) -> one ``TEXT_OUTPUT`` response per streamed text delta, then an empty
final response. ``execute`` only validates and schedules: generation runs as coroutines on an event
loop thread, so many requests stream at once and Triton keeps feeding the in-flight batcher.

LoRA mode (``lora_adapters`` parameter, JSON ``{name: uri}``, adapters synced to ``lora/<name>/``): the
optional ``LORA_NAME`` input picks an adapter per request; without it the base model answers.

Files: the quantized checkpoint in ``<checkpoint_dir>/`` (HF layout + ModelOpt FP8 scales, from the
engine build). Parameters: ``checkpoint_dir``, ``llm_backend``, ``tensor_parallel_size``, ``kv_cache_max_tokens``,
``kv_cache_free_gpu_memory_fraction``, ``max_num_tokens``, ``max_seq_len``, ``max_inflight_requests``,
``max_new_tokens_default`` (256), ``max_new_tokens_limit`` (4096), ``max_lora_rank`` (64), ``prompt_format``
(``chat``, the default: the request's text is the user's message, formatted with the checkpoint's own chat template
from its ``tokenizer_config.json``; ``completion``: the text goes to the model as it is).

The prompt is tokenized here, with the checkpoint's tokenizer (transformers), and handed to TensorRT-LLM as token
ids: whether TensorRT-LLM's tokenizer wrapper (``LLM.tokenizer``) exposes the chat template is not something to build
on, and text with the template's begin-of-text token would get a second one when TensorRT-LLM tokenized it again.
Needs the Triton TensorRT-LLM image (``tensorrt_llm`` importable); it cannot run on a CPU machine.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import triton
from _common.errors import BadRequest

# What this model loads from its version directory: config parameter -> default name (the renderer
# checks each one is written or listed in repository.json for the deployment to place).
REQUIRED_FILES = {"checkpoint_dir": "checkpoint"}  # a directory: the quantized checkpoint


OPTIONS_FILE = "llm_api_options.yaml"  # written by the engine build next to the checkpoint it prepared


def built_options(checkpoint: Path) -> dict:
    """The LLM API options the build prepared and verified the checkpoint with (backend, parallelism, batch and
    token limits, KV cache dtype); a checkpoint without them was not made by this platform's build."""
    import yaml

    path = checkpoint / OPTIONS_FILE
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: the artifact was not prepared by the engine build; rebuild it")
    options = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(options, dict):
        raise RuntimeError(f"{path} is not a mapping of LLM API options; rebuild the artifact")
    return options


def check_runtime(model: str, wanted: str | None, found: str | None) -> None:
    """Refuse to serve a checkpoint under another TensorRT-LLM than the one it was prepared and keyed for."""
    if wanted and found != wanted and not (found or "").startswith(wanted + "."):
        raise RuntimeError(
            f"{model}: this image runs TensorRT-LLM {found} but the checkpoint was prepared for {wanted} "
            f"(config parameter tensorrt_llm_version); deploy the image and artifacts of one platform_spec.versions "
            f"LLM_RUNTIME"
        )


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        triton.require_decoupled(self.config, args["model_name"])
        try:
            import tensorrt_llm
            from tensorrt_llm import LLM
            from tensorrt_llm.llmapi import KvCacheConfig
        except ImportError as exc:
            raise RuntimeError(
                f"{args['model_name']}: tensorrt_llm is not importable ({exc}); serve this model from the "
                f"Triton TensorRT-LLM image (platform_spec.versions.TRITON_TRTLLM_IMAGE)"
            ) from None
        params = triton.parameters(self.config)
        check_runtime(
            args["model_name"], params.get("tensorrt_llm_version"), getattr(tensorrt_llm, "__version__", None)
        )
        version_dir = Path(args["model_repository"]) / args["model_version"]
        checkpoint = version_dir / params.get("checkpoint_dir", REQUIRED_FILES["checkpoint_dir"])
        if not (checkpoint / "config.json").is_file():
            raise RuntimeError(f"{checkpoint} holds no checkpoint: sync the model's files from the model store")
        self.max_new_tokens_default = int(params.get("max_new_tokens_default", "256"))
        self.max_new_tokens_limit = int(params.get("max_new_tokens_limit", "4096"))
        self.adapters = {
            name: version_dir / "lora" / name for name in json.loads(params.get("lora_adapters", "{}") or "{}")
        }
        options = built_options(checkpoint)
        # The build's own serving options (what its smoke test loaded), plus the KV token budget the stack's GPU
        # memory plan gave this model where it is placed (two models on one GPU must not each claim 90 % of it).
        kv = options.pop("kv_cache_config", {})
        options.pop("lora_config", None)  # rebuilt below from the adapters this deployment places
        options["kv_cache_config"] = KvCacheConfig(
            max_tokens=int(params["kv_cache_max_tokens"]) if params.get("kv_cache_max_tokens") else None,
            free_gpu_memory_fraction=float(kv.get("free_gpu_memory_fraction", 0.85)),
            dtype=kv.get("dtype", "auto"),
        )
        options["model"] = str(checkpoint)
        self.max_seq_len = int(options.get("max_seq_len", params.get("max_seq_len", "8192")))
        if self.adapters:
            from tensorrt_llm.lora_manager import LoraConfig

            missing = [str(p) for p in self.adapters.values() if not p.is_dir()]
            if missing:
                raise RuntimeError(f"LoRA adapters missing: {missing}; sync them from the model store")
            options["lora_config"] = LoraConfig(
                lora_dir=[str(p) for p in self.adapters.values()],
                max_lora_rank=int(params.get("max_lora_rank", "64")),
                max_loras=len(self.adapters),
                max_cpu_loras=len(self.adapters),
            )
        self.prompt_format = params.get("prompt_format", "chat")
        if self.prompt_format not in ("chat", "completion"):
            raise RuntimeError(f"parameter prompt_format is {self.prompt_format!r}; use chat or completion")
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
        if self.prompt_format == "chat" and not getattr(self.tokenizer, "chat_template", None):
            raise RuntimeError(
                f"{checkpoint}/tokenizer_config.json has no chat_template: an instruct model fed raw text answers "
                "badly; ship the instruct checkpoint's tokenizer files, or set the parameter prompt_format to "
                "completion for a base model"
            )
        self.llm = LLM(**options)
        self.inflight = asyncio.Semaphore(int(params.get("max_inflight_requests", "64")))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="llm-stream", daemon=True)
        self.thread.start()

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                job = self._parse(request)
            except Exception as exc:  # noqa: BLE001 - this request's stream ends with its error
                sender.send(triton.error_response(exc), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                continue
            asyncio.run_coroutine_threadsafe(self._stream(sender, *job), self.loop)
        return None

    def _parse(self, request):
        from tensorrt_llm import SamplingParams

        prompts = triton.strings(triton.input_array(request, "TEXT_INPUT"), "TEXT_INPUT")
        if len(prompts) != 1:
            raise BadRequest(f"TEXT_INPUT holds {len(prompts)} prompts; send exactly one per request")
        max_tokens = triton.optional_number(
            request, "MAX_TOKENS", self.max_new_tokens_default, 1, self.max_new_tokens_limit
        )
        temperature = triton.optional_number(request, "TEMPERATURE", 1.0, 0.0, 10.0, cast=float)
        prompt = prompts[0]
        if self.prompt_format == "chat":  # an instruct model answers in its chat format
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            token_ids = self.tokenizer.encode(text, add_special_tokens=False)  # the template has the BOS token
        else:
            token_ids = self.tokenizer.encode(prompt)
        needed = len(token_ids)
        if needed + max_tokens > self.max_seq_len:
            raise BadRequest(
                f"TEXT_INPUT is {needed} tokens; with MAX_TOKENS={max_tokens} it exceeds the {self.max_seq_len}-token "
                f"context; shorten the prompt or lower MAX_TOKENS"
            )
        sampling = SamplingParams(max_tokens=max_tokens, temperature=temperature) if temperature > 0 else (
            SamplingParams(max_tokens=max_tokens, top_k=1)
        )  # fmt: skip
        return token_ids, sampling, self._lora(request)

    def _lora(self, request):
        names = triton.input_array(request, "LORA_NAME", required=False) if self.adapters else None
        if names is None:
            return None
        name = triton.strings(names, "LORA_NAME")[0]
        if name not in self.adapters:
            raise BadRequest(f"LORA_NAME {name!r} is not served here; use one of {sorted(self.adapters)} or omit it")
        from tensorrt_llm.executor.request import LoRARequest

        return LoRARequest(name, sorted(self.adapters).index(name) + 1, str(self.adapters[name]))

    async def _stream(self, sender, token_ids, sampling, lora) -> None:
        cancelled = getattr(sender, "is_cancelled", lambda: False)
        sent = 0
        try:
            async with self.inflight:
                generation = self.llm.generate_async(token_ids, sampling, streaming=True, lora_request=lora)
                async for output in generation:
                    if cancelled():
                        generation.abort()
                        break
                    text = output.outputs[0].text
                    if len(text) > sent:
                        piece = np.array([text[sent:].encode("utf-8")], dtype=np.object_)
                        sender.send(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("TEXT_OUTPUT", piece)]))
                        sent = len(text)
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        except Exception as exc:  # noqa: BLE001 - the stream ends with the error, the model lives on
            sender.send(triton.error_response(exc), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def finalize(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.llm.shutdown()
