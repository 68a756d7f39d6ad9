"""Static causality guard: reject per-ticker expressions that could read the future.

The check reads every node of Polars' serialised expression tree (``walker``), so it sees
what will actually run: negative or computed shifts and diffs, centred windows, backward
fills, reversals, sorts and whole-column aggregations (a mean over the whole ticker includes
its future) are all refused.
"""

from __future__ import annotations

import polars as pl

from pipeline.errors import ConfigError
from pipeline.features.walker import Node, walk

# Reorderings, index lookups and whole-partition transforms: all can read rows after t.
_FORBIDDEN_FUNCTIONS = {
    "Reverse",
    "Sort",
    "SortBy",
    "Gather",
    "Get",
    "Explode",
    "Implode",
    "Rank",
    "Interpolate",
    "InterpolateBy",
    "BackwardFill",
    "Slice",
    "Head",
    "Tail",
    "Filter",
}
# A whole-partition aggregation or window includes the ticker's future rows.
_PARTITION_NODES = {"Agg", "Window", "Over"}


class LookAheadError(ConfigError):
    """A feature expression would use rows after t to compute the value at t."""


def _violation(node: Node) -> str | None:
    """Why ``node`` could read rows after t (naming where), or None if it cannot on its own."""
    at = node.path
    if node.name in _FORBIDDEN_FUNCTIONS:
        return f"{node.name} is not causal ({at})"
    if node.name in _PARTITION_NODES:
        return f"whole-partition aggregation or window at {at}; use a trailing rolling_* instead"
    if node.name == "FillNullWithStrategy" and node.tag == "Backward":
        return f"backward fill at {at}"
    if node.options.get("center") is True:
        return f"centred window at {at}"
    if node.options.get("reverse") is True:
        return f"reversed cumulative op at {at}"
    # A computed offset (None) is refused too: it could evaluate to a negative one.
    if any(offset is None or offset < 0 for offset in node.offsets):
        return f"negative or non-literal shift at {at}"
    return None


def assert_causal(expr: pl.Expr, name: str) -> None:
    """Raise LookAheadError if ``expr`` contains a construct that can look forward."""
    for node in walk(expr):
        why = _violation(node)
        if why is not None:
            raise LookAheadError(f"feature '{name}': {why}")
