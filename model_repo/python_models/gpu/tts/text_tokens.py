"""Text -> FastPitch input ids, from the symbol table and lexicon exported with the FastPitch checkpoint.

``tokens.json`` (written by the export step next to ``fastpitch.onnx``, synced with the engines)::

    {"symbols": ["<pad>", " ", "!", ..., "AA0", "AA1", ..., "a", "b", ...],
     "pad": "<pad>", "space": " ", "pad_with_space": true,
     "lexicon": {"hello": ["HH", "AH0", "L", "OW1"], ...}}

Words found in the lexicon become their phonemes (ARPAbet with stress, as NeMo's English phoneme
tokenizer with CMUdict produces); other words fall back to their letters, as NeMo does for
out-of-vocabulary words; punctuation the table knows is kept (it shapes prosody); numbers are
written out in words first. Symbols the table lacks are dropped.
"""

from __future__ import annotations

import re

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_TOKEN = re.compile(r"[a-z']+|[0-9]+|[^\sa-z0-9]|\s+")


def number_words(n: int) -> str:
    """0 <= n < 10**9 in English words (larger numbers are read digit by digit)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_words(n % 100))
    for size, name in ((10**6, "million"), (10**3, "thousand")):
        if n >= size and n < size * 1000:
            rest = n % size
            return number_words(n // size) + f" {name}" + ("" if rest == 0 else " " + number_words(rest))
    return " ".join(_ONES[int(d)] for d in str(n))


class PhonemeTokenizer:
    def __init__(self, table: dict) -> None:
        self.ids = {symbol: i for i, symbol in enumerate(table["symbols"])}
        self.lexicon = {word.lower(): list(phones) for word, phones in table.get("lexicon", {}).items()}
        self.space = table.get("space", " ")
        self.space_id = self.ids.get(self.space)
        self.pad_with_space = bool(table.get("pad_with_space", False))

    def symbols(self, text: str) -> list[str]:
        out: list[str] = []
        for token in _TOKEN.findall(text.lower()):
            if token.isspace():
                out.append(self.space)
            elif token.isdigit():
                out.extend(self.symbols(number_words(int(token))))
            elif token[0].isalpha() or token[0] == "'":
                out.extend(self.lexicon.get(token) or [c for c in token if c != "'"])
            else:
                out.append(token)
        if self.pad_with_space:
            out = [self.space, *out, self.space]
        return out

    def encode(self, text: str) -> list[int]:
        return [self.ids[s] for s in self.symbols(text) if s in self.ids]


def split_tokens(ids: list[int], limit: int, space_id: int | None) -> list[list[int]]:
    """``ids`` in parts of at most ``limit`` symbols, cut after the last word break that fits where there is one."""
    parts = []
    while len(ids) > limit:
        window = ids[:limit]
        cut = max((i + 1 for i, t in enumerate(window) if t == space_id), default=limit)
        parts.append(ids[:cut])
        ids = ids[cut:]
    return [*parts, ids] if ids else parts
