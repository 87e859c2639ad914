"""Greedy decoding of a Token-and-Duration Transducer (Parakeet-TDT), NeMo's ``GreedyTDTInfer`` rules.

At encoder frame ``t`` the decoder-joint network scores the next token (vocabulary + blank) and how
many frames to skip (the TDT durations, e.g. 0-4). A non-blank token is emitted and advances the
prediction network's state; the time pointer moves by the predicted duration -- by one frame when a
blank comes with duration 0, or when ``max_symbols`` tokens were emitted at one frame. The utterances of
a dynamic batch are decoded side by side, one decoder-joint call per step for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# (frames [active, 1024], previous tokens [active], states ([layers, active, H], [layers, active, H])) ->
# (token logits [active, vocab + 1], duration logits [active, durations], new states): one decoder-joint call for
# every utterance still being decoded.
Step = Callable[[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray, tuple]]


def greedy_tdt(
    encoded: Sequence[np.ndarray],
    lengths: Sequence[int],
    step: Step,
    initial_state: tuple[np.ndarray, np.ndarray],
    blank_id: int,
    durations: Sequence[int],
    max_symbols: int = 10,
) -> list[list[int]]:
    """Token ids for a batch of utterances decoded together; ``encoded[b]`` is [features, frames] with
    ``lengths[b]`` valid frames, ``initial_state`` the prediction network's zero state for the whole batch.

    Each utterance keeps its own frame pointer and state; one ``step`` scores the current frame of every utterance
    not finished yet, so a batch costs as many decoder calls as its longest decoding, not their sum."""
    batch = len(lengths)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    hidden, cell = (np.array(s, copy=True) for s in initial_state)
    t = [0] * batch
    emitted_here = [0] * batch
    while active := [b for b in range(batch) if t[b] < lengths[b]]:
        frames = np.stack([encoded[b][:, t[b]] for b in active])
        previous = np.array([tokens[b][-1] if tokens[b] else blank_id for b in active], dtype=np.int32)
        token_logits, duration_logits, (new_hidden, new_cell) = step(
            frames, previous, (hidden[:, active], cell[:, active])
        )
        for i, b in enumerate(active):
            token = int(np.argmax(token_logits[i]))
            skip = int(durations[int(np.argmax(duration_logits[i]))])
            if token != blank_id:
                tokens[b].append(token)
                hidden[:, b], cell[:, b] = new_hidden[:, i], new_cell[:, i]
                emitted_here[b] += 1
            if skip == 0 and (token == blank_id or emitted_here[b] >= max_symbols):
                skip = 1
            if skip > 0:
                t[b] += skip
                emitted_here[b] = 0
    return tokens


def detokenize(ids: Sequence[int], vocab: Sequence[str]) -> str:
    """SentencePiece pieces -> text (``▁`` marks a word start)."""
    return "".join(vocab[i] for i in ids).replace("\u2581", " ").strip()
