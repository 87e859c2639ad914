"""LLM on the CPU target: SmolLM2-135M-Instruct (trained, small: fluent, not smart) streaming its answer.

Decoupled: for a ``TEXT_INPUT`` (the user's message) it sends one response per piece of generated text
(``TEXT_OUTPUT``), then an empty response flagged final. The message is formatted with the checkpoint's chat
template and the ``system_prompt`` parameter, as the gpu model formats Llama-3.1-8B-Instruct's; generation stops
at the model's end-of-turn token. Optional inputs ``MAX_TOKENS`` (default from ``max_new_tokens_default``, at most
``max_new_tokens_limit``) and ``TEMPERATURE`` (default 0, greedy: a 135M model answers best greedily). A prompt that
leaves no room for the answer in the model's context is refused with its length and the limit. A client that
cancels stops generation at the next token. Parameters: ``threads`` (default 1, PyTorch threads of this instance),
``max_seq_len`` (the context allowed, prompt and answer; at most the model's own).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import triton
from _common.artifact import load_verified
from _common.errors import BadRequest
from chat_lm import ChatLM


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        triton.require_decoupled(self.config, args["model_name"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        load_verified(version_dir)
        params = triton.parameters(self.config)
        self.max_new_tokens_default = int(params.get("max_new_tokens_default", "48"))
        self.max_new_tokens_limit = int(params.get("max_new_tokens_limit", "512"))
        self.lm = ChatLM(str(version_dir), params.get("system_prompt", ""), int(params.get("threads", "1")))
        # The context this deployment allows (max_seq_len, as on the gpu target), within what the model knows.
        self.max_positions = min(self.lm.max_positions, int(params.get("max_seq_len", str(self.lm.max_positions))))

    def execute(self, requests):
        return triton.execute_streams(requests, self._stream)

    def _stream(self, request, sender) -> None:
        prompt = triton.strings(triton.input_array(request, "TEXT_INPUT"), "TEXT_INPUT")
        if len(prompt) != 1:
            raise BadRequest(f"TEXT_INPUT holds {len(prompt)} prompts; send exactly one per request")
        max_tokens = triton.optional_number(
            request, "MAX_TOKENS", self.max_new_tokens_default, 1, self.max_new_tokens_limit
        )
        temperature = triton.optional_number(request, "TEMPERATURE", 0.0, 0.0, 10.0, cast=float)
        ids = self.lm.prompt_ids(prompt[0])
        room = self.max_positions - max_tokens
        if len(ids) > room:
            raise BadRequest(
                f"TEXT_INPUT is {len(ids)} tokens with the chat template; with MAX_TOKENS={max_tokens} it may be at "
                f"most {room} ({self.max_positions}-token context); shorten the prompt or lower MAX_TOKENS"
            )
        cancelled = getattr(sender, "is_cancelled", lambda: False)
        for piece in self.lm.generate(ids, max_tokens, temperature, cancelled):
            out = pb_utils.Tensor("TEXT_OUTPUT", np.array([piece.encode()], dtype=np.object_))
            sender.send(pb_utils.InferenceResponse(output_tensors=[out]))
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
