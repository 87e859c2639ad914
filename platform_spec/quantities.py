"""Kubernetes resource quantities ("1500m", "16Gi", "2") as numbers: CPUs in cores, memory and storage in bytes."""

from __future__ import annotations

import re

_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}  # fmt: skip
_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?(?:e[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?")


def quantity(text: str | int | float) -> float:
    """The value of a quantity in its base unit (cores or bytes); ValueError naming the text otherwise."""
    match = _QUANTITY.fullmatch(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity; write it like 500m, 2, 512Mi or 16Gi")
    number, suffix = match.groups()
    return float(number) * _SUFFIX[suffix or ""]
