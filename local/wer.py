"""Word error rate of a transcript against what was said (jiwer), both sides normalised the same way: lower case,
punctuation removed, single spaces -- so "How do I" against "how do i" is 0, and "I'll do my" against it is not."""

from __future__ import annotations

import jiwer

_NORMALISE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Substitutions, deletions and insertions over the reference's words (1.0 for an empty hypothesis)."""
    if not hypothesis.strip():
        return 1.0
    return float(jiwer.wer(reference, hypothesis, reference_transform=_NORMALISE, hypothesis_transform=_NORMALISE))
