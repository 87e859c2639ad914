"""The metric names a PromQL expression reads, without a PromQL parser.

A small lexer, enough for the expressions this repository writes: it skips strings,
label matchers ``{...}``, range and subquery brackets ``[...]``, numbers and durations,
label lists after ``by``/``without``/``on``/``ignoring``/``group_left``/``group_right``,
keywords, and any identifier followed by ``(`` (a function or an aggregation). What
remains are metric names. promtool checks the syntax; this only names the metrics.
"""

from __future__ import annotations

_LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"}
_AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}


def _skip_string(expr: str, i: int) -> int:
    quote = expr[i]
    i += 1
    while i < len(expr) and expr[i] != quote:
        i += 2 if expr[i] == "\\" and quote != "`" else 1
    return i + 1


def _skip_until(expr: str, i: int, closing: str) -> int:
    while i < len(expr) and expr[i] != closing:
        i = _skip_string(expr, i) if expr[i] in "\"'`" else i + 1
    return i + 1


def _next_char(expr: str, i: int) -> tuple[str, int]:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return (expr[i] if i < len(expr) else ""), i


def metric_names(expr: str) -> set[str]:
    """Every metric name the expression selects."""
    names: set[str] = set()
    i = 0
    while i < len(expr):
        char = expr[i]
        if char in "\"'`":
            i = _skip_string(expr, i)
        elif char == "{":
            i = _skip_until(expr, i + 1, "}")
        elif char == "[":
            i = _skip_until(expr, i + 1, "]")
        elif char.isdigit() or (char == "." and i + 1 < len(expr) and expr[i + 1].isdigit()):
            while i < len(expr) and (expr[i].isalnum() or expr[i] in "._"):
                i += 1
        elif char.isalpha() or char in "_:":
            start = i
            while i < len(expr) and (expr[i].isalnum() or expr[i] in "_:"):
                i += 1
            word = expr[start:i]
            following, j = _next_char(expr, i)
            lowered = word.lower()
            # A function or aggregation call, or an aggregation written `sum by (...) (...)`.
            is_call = following == "(" or (lowered in _AGGREGATIONS and expr[j : j + 2] in ("by", "wi"))
            if lowered in _LABEL_LIST_KEYWORDS:
                if following == "(":
                    i = _skip_until(expr, j + 1, ")")
            elif lowered not in _KEYWORDS and not is_call:
                names.add(word)
        else:
            i += 1
    return names
