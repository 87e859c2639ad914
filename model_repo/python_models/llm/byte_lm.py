"""Token-by-token generation with a byte-level causal LM (the CPU target's tiny Llama), KV-cached.

Vocabulary: ids 0-255 are UTF-8 bytes, then special tokens (``artifact.json`` lists them). Sampling is
restricted to lower-case letters, space and simple punctuation: the CPU model's weights are random, and
this keeps its stream speakable text a TTS can read (a trained model would not need the mask; the
production LLM samples freely and stops at EOS). The sampler is seeded from the prompt, so one prompt always streams
the same text: reproducible tests and demos.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import torch

SPEAKABLE = b"abcdefghijklmnopqrstuvwxyz ,.?'"


class ByteLM:
    def __init__(self, model_dir: str, special_tokens: dict[str, int], max_positions: int) -> None:
        from transformers import LlamaForCausalLM

        torch.set_num_threads(1)
        self.model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.bos = int(special_tokens["bos"])
        self.eos = int(special_tokens["eos"])
        self.max_positions = max_positions
        vocab = self.model.config.vocab_size
        self.mask = torch.full((vocab,), float("-inf"))
        self.mask[list(SPEAKABLE)] = 0.0
        # EOS is masked too: random weights cannot know when an answer ends (it would stop at random);
        # the stream ends at MAX_TOKENS.

    def prompt_ids(self, prompt: str) -> list[int]:
        return [self.bos, *prompt.encode("utf-8")]

    @torch.inference_mode()
    def generate(
        self,
        prompt: str,
        max_new_tokens: int,
        temperature: float,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Iterator[str]:
        """Yield one text piece per generated token until EOS, ``max_new_tokens`` or cancellation."""
        ids = torch.tensor([self.prompt_ids(prompt)])
        generator = torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big"))
        past = None
        for _ in range(max_new_tokens):
            if cancelled():
                return
            out = self.model(input_ids=ids, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1] + self.mask
            if temperature <= 0:
                token = int(logits.argmax())
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                token = int(torch.multinomial(probs, 1, generator=generator))
            if token == self.eos:
                return
            yield bytes([token]).decode("utf-8")
            ids = torch.tensor([[token]])
