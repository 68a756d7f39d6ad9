"""Static causality guard: reject per-ticker expressions that could read the future.

The check walks Polars' serialised expression tree, so it sees what will actually run:
negative shifts or diffs, centred windows, backward fills, reversals, sorts and whole-column
aggregations (a mean over the whole ticker includes its future) are all refused.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from pipeline.errors import ConfigError

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
_OFFSET_FUNCTIONS = {"Shift", "Diff", "PctChange", "ShiftAndFill"}


class LookAheadError(ConfigError):
    """A feature expression would use rows after t to compute the value at t."""


def _walk(node: Any, name: str, path: str) -> None:
    if isinstance(node, list):
        for i, child in enumerate(node):
            _walk(child, name, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in _FORBIDDEN_FUNCTIONS:  # top-level nodes such as {"Sort": ...}, {"Gather": ...}
            raise LookAheadError(f"feature '{name}': {key} is not causal ({path})")
        if key == "center" and value is True:
            raise LookAheadError(f"feature '{name}': centred window at {path}")
        if key in {"Agg", "Window", "Over"}:
            raise LookAheadError(
                f"feature '{name}': whole-partition aggregation or window at {path}; use a "
                "trailing rolling_* instead"
            )
        if key == "FillNullWithStrategy" and "Backward" in json.dumps(value):
            raise LookAheadError(f"feature '{name}': backward fill at {path}")
        if key == "reverse" and value is True:
            raise LookAheadError(f"feature '{name}': reversed cumulative op at {path}")
        if key == "Function" and isinstance(value, dict):
            fn = value.get("function")
            label = (
                fn if isinstance(fn, str) else next(iter(fn), "") if isinstance(fn, dict) else ""
            )
            if label in _FORBIDDEN_FUNCTIONS:
                raise LookAheadError(f"feature '{name}': {label} is not causal ({path})")
            if label in _OFFSET_FUNCTIONS:
                _check_offset(value.get("input", []), fn, name, f"{path}.{label}")
        _walk(value, name, f"{path}.{key}")


def _literal_int(node: Any) -> int | None:
    """The value of a plain integer literal node, or None for anything computed."""
    if isinstance(node, int) and not isinstance(node, bool):
        return node
    if isinstance(node, dict) and set(node) == {"Literal"}:
        inner = node["Literal"]
        if isinstance(inner, dict) and set(inner) == {"Dyn"}:
            dyn = inner["Dyn"]
            if isinstance(dyn, dict) and set(dyn) == {"Int"} and isinstance(dyn["Int"], int):
                return int(dyn["Int"])
        if isinstance(inner, dict) and set(inner) == {"Scalar"}:
            scalar = json.dumps(inner["Scalar"])
            digits = scalar.split(":")[-1].strip(' }"')
            if digits.lstrip("-").isdigit() and scalar.count(":") <= 2:
                return int(digits)
    return None


def _check_offset(inputs: list[Any], fn: Any, name: str, path: str) -> None:
    offsets: list[Any] = [inputs[1]] if len(inputs) > 1 else []
    if isinstance(fn, dict):
        offsets.extend(v for v in fn.values() if isinstance(v, int))
    for node in offsets:
        value = _literal_int(node)
        if value is None or value < 0:
            raise LookAheadError(f"feature '{name}': negative or non-literal shift at {path}")


def assert_causal(expr: pl.Expr, name: str) -> None:
    """Raise LookAheadError if ``expr`` contains a construct that can look forward."""
    tree = json.loads(expr.meta.serialize(format="json"))
    _walk(tree, name, "expr")
