"""LLM on the CPU target: a tiny Llama (random weights, real architecture, not trained) streaming text.

Decoupled: for a ``TEXT_INPUT`` prompt it sends one response per generated piece of text
(``TEXT_OUTPUT``), then an empty response flagged final. Optional inputs ``MAX_TOKENS`` (default from the
``max_new_tokens_default`` parameter, at most ``max_new_tokens_limit``) and ``TEMPERATURE`` (0 = greedy,
default 1). A prompt that leaves no room for the answer in the model's context is refused with its
length and the limit. A client that cancels the stream stops generation at the next token.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import triton
from _common.artifact import load_verified
from _common.errors import BadRequest
from byte_lm import ByteLM


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        triton.require_decoupled(self.config, args["model_name"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        manifest = load_verified(version_dir)
        details = manifest["details"]
        params = triton.parameters(self.config)
        self.max_new_tokens_default = int(params.get("max_new_tokens_default", "16"))
        self.max_new_tokens_limit = int(params.get("max_new_tokens_limit", "512"))
        self.lm = ByteLM(str(version_dir), details["special_tokens"], int(details["max_positions"]))

    def execute(self, requests):
        return triton.execute_streams(requests, self._stream)

    def _stream(self, request, sender) -> None:
        prompt = triton.strings(triton.input_array(request, "TEXT_INPUT"), "TEXT_INPUT")
        if len(prompt) != 1:
            raise BadRequest(f"TEXT_INPUT holds {len(prompt)} prompts; send exactly one per request")
        max_tokens = triton.optional_number(
            request, "MAX_TOKENS", self.max_new_tokens_default, 1, self.max_new_tokens_limit
        )
        temperature = triton.optional_number(request, "TEMPERATURE", 1.0, 0.0, 10.0, cast=float)
        room = self.lm.max_positions - max_tokens
        needed = len(self.lm.prompt_ids(prompt[0]))
        if needed > room:
            raise BadRequest(
                f"TEXT_INPUT is {needed} tokens (UTF-8 bytes + BOS); with MAX_TOKENS={max_tokens} it may be at "
                f"most {room} ({self.lm.max_positions}-token context); shorten the prompt or lower MAX_TOKENS"
            )
        cancelled = getattr(sender, "is_cancelled", lambda: False)
        for piece in self.lm.generate(prompt[0], max_tokens, temperature, cancelled):
            out = pb_utils.Tensor("TEXT_OUTPUT", np.array([piece.encode()], dtype=np.object_))
            sender.send(pb_utils.InferenceResponse(output_tensors=[out]))
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
