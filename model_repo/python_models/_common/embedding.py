"""The sentence-embedding interface both targets serve: ``TEXT`` in, one ``EMBEDDING`` row per text out.

The cpu (ONNX Runtime) and gpu (TensorRT encoder) models differ only in how they encode; the length check
on each request and the split of a batch's vectors back into per-request responses are the interface
itself, so they live here once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from _common import triton
from _common.errors import BadRequest


def texts_to_embed(request: Any, token_counts: Callable[[list[str]], Sequence[int]], max_tokens: int) -> list[str]:
    """The request's ``TEXT`` strings, or BadRequest naming the first one longer than ``max_tokens``."""
    texts = triton.strings(triton.input_array(request, "TEXT"), "TEXT")
    for i, count in enumerate(token_counts(texts)):
        if count > max_tokens:
            raise BadRequest(
                f"TEXT item {i} is {count} tokens long; this model embeds at most {max_tokens} tokens "
                f"(about {max_tokens * 3} characters of English); split the text into shorter passages"
            )
    return texts


def embedding_responses(items: list[list[str]], vectors: np.ndarray, model_config: dict[str, Any]) -> list[Any]:
    """One ``EMBEDDING`` response per request, taking its rows of ``vectors`` (all texts, in order)."""
    responses, at = [], 0
    for texts in items:
        rows = vectors[at : at + len(texts)]
        at += len(texts)
        if not triton.batched(model_config):
            rows = rows[0]
        responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("EMBEDDING", rows)]))
    return responses
