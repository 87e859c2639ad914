"""Greedy decoding of a Token-and-Duration Transducer (Parakeet-TDT), NeMo's ``GreedyTDTInfer`` rules.

At encoder frame ``t`` the decoder-joint network scores the next token (vocabulary + blank) and how
many frames to skip (the TDT durations, e.g. 0-4). A non-blank token is emitted and advances the
prediction network's state; the time pointer moves by the predicted duration -- by one frame when a
blank comes with duration 0, or when ``max_symbols`` tokens were emitted at one frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# (encoder frame [1024], previous token, state) -> (token logits [vocab + 1], duration logits, new state)
Step = Callable[[np.ndarray, int, tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray, tuple]]


def greedy_tdt(
    encoded: np.ndarray,
    length: int,
    step: Step,
    initial_state: tuple[np.ndarray, np.ndarray],
    blank_id: int,
    durations: Sequence[int],
    max_symbols: int = 10,
) -> list[int]:
    """Token ids for one utterance; ``encoded`` is [features, frames], ``length`` its valid frames."""
    tokens: list[int] = []
    state = initial_state
    t, emitted_here = 0, 0
    while t < length:
        token_logits, duration_logits, new_state = step(encoded[:, t], tokens[-1] if tokens else blank_id, state)
        token = int(np.argmax(token_logits))
        skip = int(durations[int(np.argmax(duration_logits))])
        if token != blank_id:
            tokens.append(token)
            state = new_state
            emitted_here += 1
        if skip == 0 and (token == blank_id or emitted_here >= max_symbols):
            skip = 1
        if skip > 0:
            t += skip
            emitted_here = 0
    return tokens


def detokenize(ids: Sequence[int], vocab: Sequence[str]) -> str:
    """SentencePiece pieces -> text (``▁`` marks a word start)."""
    return "".join(vocab[i] for i in ids).replace("\u2581", " ").strip()
