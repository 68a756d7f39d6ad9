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

_FORBIDDEN_FUNCTIONS = {"Reverse", "Sort", "SortBy", "Gather", "Get", "Explode", "Implode"}


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
            if label in {"Shift", "Diff"}:
                _check_offset(value.get("input", []), fn, name, f"{path}.{label}")
        _walk(value, name, f"{path}.{key}")


def _check_offset(inputs: list[Any], fn: Any, name: str, path: str) -> None:
    offsets: list[Any] = []
    if len(inputs) > 1:
        offsets.append(inputs[1])
    if isinstance(fn, dict):
        offsets.extend(v for v in fn.values() if isinstance(v, int))
    for node in offsets:
        text = json.dumps(node)
        if isinstance(node, int):
            value: int | None = node
        elif '"Int"' in text:
            value = int(text.split('"Int":')[1].split("}")[0].strip())
        else:
            value = None
        if value is None or value < 0:
            raise LookAheadError(f"feature '{name}': negative or non-literal shift at {path}")


def assert_causal(expr: pl.Expr, name: str) -> None:
    """Raise LookAheadError if ``expr`` contains a construct that can look forward."""
    tree = json.loads(expr.meta.serialize(format="json"))
    _walk(tree, name, "expr")
