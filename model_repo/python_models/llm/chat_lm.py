"""Token-by-token chat generation with a Hugging Face causal LM checkpoint (the CPU target's SmolLM2), KV-cached.

The prompt goes through the checkpoint's own tokenizer and chat template (a system prompt, the user's message, the
assistant's turn opened), as production formats Llama-3.1-8B-Instruct; generation stops at the checkpoint's
end-of-turn tokens (``generation_config.json``'s ``eos_token_id``). Text is streamed as deltas of the decoded
answer so far: a multi-byte character split over tokens is never sent half. Sampling is seeded from the prompt,
so one prompt always gets the same answer (reproducible tests and demos).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import torch


class ChatLM:
    def __init__(self, checkpoint: str, system_prompt: str, threads: int) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        if not getattr(self.tokenizer, "chat_template", None):
            raise RuntimeError(f"{checkpoint}: the tokenizer has no chat template; an instruct model needs it")
        self.model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
        self.system_prompt = system_prompt
        eos = self.model.generation_config.eos_token_id
        self.stop_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        self.max_positions = int(self.model.config.max_position_embeddings)

    def prompt_ids(self, user_text: str) -> list[int]:
        messages = [{"role": "user", "content": user_text}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer.encode(text, add_special_tokens=False)  # the template has the special tokens

    @torch.inference_mode()
    def generate(
        self, prompt_ids: list[int], max_new_tokens: int, temperature: float, cancelled: Callable[[], bool]
    ) -> Iterator[str]:
        """Yield text deltas until an end-of-turn token, ``max_new_tokens`` or cancellation."""
        seed = int.from_bytes(hashlib.sha256(repr(prompt_ids).encode()).digest()[:8], "big")
        generator = torch.Generator().manual_seed(seed)
        ids, past, answer, sent = torch.tensor([prompt_ids]), None, [], ""
        for _ in range(max_new_tokens):
            if cancelled():
                return
            out = self.model(input_ids=ids, past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[0, -1]
            if temperature <= 0:
                token = int(logits.argmax())
            else:
                token = int(torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator))
            if token in self.stop_ids:
                return
            answer.append(token)
            text = self.tokenizer.decode(answer, skip_special_tokens=True)
            if len(text) > len(sent) and not text.endswith("\ufffd"):
                yield text[len(sent) :]
                sent = text
            ids = torch.tensor([[token]])
