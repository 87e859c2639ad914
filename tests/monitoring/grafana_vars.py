"""Grafana template variables replaced the way Grafana would before sending a query."""

from __future__ import annotations

import re

# What each variable of our dashboards expands to with "All" selected (allValue ".*"),
# and the rate interval Grafana computes for a 1-minute resolution.
EXPANSIONS = {"$__rate_interval": "1m", "$model": ".*", "$node": ".*"}


def expand(expr: str) -> str:
    """The PromQL Grafana sends for ``expr``; fails on any variable it does not know."""
    for variable, value in EXPANSIONS.items():
        expr = expr.replace(variable, value)
    leftover = re.findall(r"\$\{?\w+", expr)
    if leftover:
        raise ValueError(f"query uses Grafana variables {leftover} this test does not expand: {expr}")
    return expr
