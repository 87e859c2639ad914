"""The text-to-speech interface both targets serve: one ``TEXT`` in, ``AUDIO`` chunks + ``SAMPLE_RATE`` out.

The cpu (hibari) and gpu (FastPitch + HiFi-GAN) models differ only in how they synthesise; the request
checks and the decoupled stream of chunks are the interface itself, so they live here once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from _common import triton
from _common.errors import BadRequest


def text_to_speak(request: Any, max_chars: int) -> str:
    """The request's one ``TEXT`` string, stripped, or BadRequest when it is missing, empty or too long."""
    texts = triton.strings(triton.input_array(request, "TEXT"), "TEXT")
    if len(texts) != 1:
        raise BadRequest(f"TEXT holds {len(texts)} strings; send exactly one per request")
    text = texts[0].strip()
    if not text:
        raise BadRequest("TEXT is empty; send the words to speak")
    if len(text) > max_chars:
        raise BadRequest(
            f"TEXT is {len(text)} characters; this model speaks at most {max_chars} per request; "
            f"split the text at sentence boundaries"
        )
    return text


def send_chunks(sender: Any, wanted: Collection[str], chunks: Iterable[np.ndarray], sample_rate: int) -> bool:
    """One ``AUDIO`` + ``SAMPLE_RATE`` response per chunk (those of the two the request asked for, ``wanted``);
    False (and no more chunks) once the client cancels."""
    cancelled = getattr(sender, "is_cancelled", lambda: False)
    rate = np.array([sample_rate], dtype=np.int32)
    for chunk in chunks:
        if cancelled():
            return False
        triton.send_outputs(sender, wanted, AUDIO=chunk, SAMPLE_RATE=rate)
    return True


def send_audio(sender: Any, wanted: Collection[str], chunks: Iterable[np.ndarray], sample_rate: int) -> None:
    """Every chunk (until the client cancels), then the empty final response."""
    send_chunks(sender, wanted, chunks, sample_rate)
    sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
