"""The gpu LLM model's serving code in the real Triton Python backend, around a stand-in for TensorRT-LLM's LLM API
(tests/model_repo/trtllm_standin: same names and shapes, it echoes the token ids it is given, decoded).

Checked: a chat request reaches the model formatted with the checkpoint's own chat template (from its
tokenizer_config.json, not TensorRT-LLM's tokenizer wrapper), as token ids with exactly one begin-of-text token; the
answer streams in pieces and ends with the final flag; ``prompt_format: completion`` sends the text as it is; a chat
model whose checkpoint has no chat template refuses to load and says why. Not run: TensorRT-LLM itself (no GPU here).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engines.builders import spec_for
from engines.builders.llm_serving_config import llm_api_options, options_yaml
from engines.catalog_engines import llm_settings
from engines.spec import BuilderSettings, SourceRef, Target
from model_repo import catalog
from model_repo.local_server import TritonServer
from platform_spec import versions
from tests.gpu_standins import llama_checkpoint
from tests.gpu_standins.llama_checkpoint import CHAT_TEMPLATE
from tests.model_repo.conftest import gpu_model_on_cpu

pytestmark = pytest.mark.triton

STAND_IN = Path(__file__).resolve().parent / "trtllm_standin"


def write_checkpoint(directory: Path, chat_template: str | None, options: bool = True) -> None:
    """A Llama-layout checkpoint's files (tokenizer, chat template, the build's serving options), no weights."""
    llama_checkpoint.write_checkpoint(
        directory,
        chat_template,
        options_yaml(built_options()) if options else None,
        architecture={"model_type": "llama", "architectures": ["LlamaForCausalLM"]},
    )


def built_options() -> dict:
    """The LLM API options the engine build writes for llm_chat (engines.builders.llm_serving_config)."""
    spec = spec_for(
        "llm_chat",
        "tensorrt_llm",
        SourceRef("store://sources/llama/", "f" * 64, "hf_checkpoint"),
        Target.for_gpu("h100", "tensorrt_llm"),
        BuilderSettings(precision="fp8", llm=llm_settings(catalog.CATALOG["llm_chat"])),
    )
    return llm_api_options(spec)


def add_model(
    repo: Path,
    name: str,
    chat_template: str | None,
    prompt_format: str | None = None,
    options: bool = True,
    **more: str,
) -> None:
    parameters = ({"prompt_format": prompt_format} if prompt_format is not None else {}) | more
    version = gpu_model_on_cpu(repo, catalog.CATALOG["llm_chat"], name=name, parameters=parameters)
    # The stand-in beside the model, where the backend's stub imports from (it does not read PYTHONPATH).
    shutil.copytree(STAND_IN / "tensorrt_llm", version / "tensorrt_llm")
    write_checkpoint(version / "checkpoint", chat_template, options)


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("gpu-llm")
    add_model(repo, "llm_chat", CHAT_TEMPLATE)
    add_model(repo, "llm_raw", CHAT_TEMPLATE, prompt_format="completion")
    add_model(repo, "llm_untemplated", None)
    add_model(repo, "llm_other_runtime", CHAT_TEMPLATE, tensorrt_llm_version="1.0.0")
    add_model(repo, "llm_unbuilt", CHAT_TEMPLATE, options=False)
    server = TritonServer(repo, model_control_mode="explicit", load_models=["llm_chat", "llm_raw"],
                          work_dir=tmp_path_factory.mktemp("gpu-llm-server"), startup_timeout_s=120)  # fmt: skip
    with server:
        yield server


def _answer(server, model: str, text: str) -> list:
    from tests.model_repo.conftest import Serving

    inputs = {"TEXT_INPUT": np.array([text.encode()], dtype=np.object_), "MAX_TOKENS": np.array([16], np.int32)}
    return Serving(server).stream(model, inputs)


def test_a_chat_request_is_formatted_with_the_checkpoints_chat_template(llm_server):
    responses = _answer(llm_server, "llm_chat", "what is my balance")
    assert responses[-1].final and not responses[-1].outputs
    pieces = [r.outputs["TEXT_OUTPUT"][0].decode() for r in responses[:-1]]
    assert len(pieces) > 1, "the answer streams in pieces"
    echoed = "".join(pieces)
    assert echoed.endswith(
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nwhat is my balance<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ), echoed
    assert echoed.count("<|begin_of_text|>") == 1, "one begin-of-text token, not one from the template and another"


def test_the_kv_cache_budget_and_dtype_reach_tensorrt_llm(llm_server):
    """The model's kv_cache_max_tokens (what the stack's GPU memory plan counts) is KvCacheConfig.max_tokens, and an
    FP8 checkpoint gets an FP8 KV cache (the plan counts 64 KiB a token); the stand-in reports both."""
    echoed = "".join(r.outputs["TEXT_OUTPUT"][0].decode() for r in _answer(llm_server, "llm_chat", "hi")[:-1])
    spec = catalog.CATALOG["llm_chat"]
    assert spec.precision_in_use == "fp8"
    assert f"kv_max_tokens={spec.target('gpu').parameters['kv_cache_max_tokens']},kv_dtype=fp8" in echoed, echoed


def test_completion_format_sends_the_text_as_it_is(llm_server):
    echoed = "".join(r.outputs["TEXT_OUTPUT"][0].decode() for r in _answer(llm_server, "llm_raw", "Once upon")[:-1])
    assert echoed.endswith(":Once upon") and "<|start_header_id|>" not in echoed


def test_a_chat_model_without_a_chat_template_refuses_to_load(llm_server):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(llm_server.endpoints.http)
    with pytest.raises(Exception, match=r"tokenizer_config.json has no chat_template: an instruct model fed raw"):
        client.load_model("llm_untemplated")
    assert client.is_model_ready("llm_chat")


def test_a_checkpoint_keyed_for_another_tensorrt_llm_refuses_to_load(llm_server):
    """The rendered config names the TensorRT-LLM the artifact was prepared (and keyed) for; the image runs another."""
    import tritonclient.http as httpclient

    assert catalog.CATALOG["llm_chat"].target("gpu").parameters["tensorrt_llm_version"] == versions.TENSORRT_LLM_VERSION
    standin = (STAND_IN / "tensorrt_llm" / "__init__.py").read_text()
    assert f'"TRTLLM_STANDIN_VERSION", "{versions.TENSORRT_LLM_VERSION}"' in standin, "the stand-in plays the pin"
    client = httpclient.InferenceServerClient(llm_server.endpoints.http)
    with pytest.raises(Exception, match=r"runs TensorRT-LLM 1\.1\.0 but the checkpoint was prepared for 1\.0\.0"):
        client.load_model("llm_other_runtime")


def test_the_build_s_serving_options_reach_tensorrt_llm_and_a_checkpoint_without_them_refuses(llm_server):
    """Serving loads the checkpoint with the options the build wrote (and verified it with): the stand-in echoes
    the batch and token limits it was given; the deployment adds only its KV token budget."""
    import tritonclient.http as httpclient

    built = built_options()
    echoed = "".join(r.outputs["TEXT_OUTPUT"][0].decode() for r in _answer(llm_server, "llm_chat", "hi")[:-1])
    assert f"max_batch_size={built['max_batch_size']},max_num_tokens={built['max_num_tokens']}" in echoed, echoed
    client = httpclient.InferenceServerClient(llm_server.endpoints.http)
    with pytest.raises(
        Exception, match=r"llm_api_options.yaml is missing: the artifact was not prepared by the engine"
    ):
        client.load_model("llm_unbuilt")
