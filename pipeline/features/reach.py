"""How many rows before t an expression reads, for the engine's whole-column paths.

An expression made only of pointwise nodes, literal shifts/diffs and fixed trailing rolling
windows reads a bounded stretch of rows: row t needs rows t - reach .. t, where ``reach`` adds
up along each path through the tree (``x.shift(1).rolling_std(20)`` reads 1 + 19 rows back)
and is the largest over all paths. Computed over the whole sorted column, such an expression
is therefore the per-ticker value at every row whose position within its ticker is >= reach:
the engine masks the rest, so nothing is read across a ticker boundary.

The computation reads Polars' serialised tree (the same JSON ``walker`` reads); it is only
asked about expressions whose every node the engine has already classified.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pipeline.features.hoist import EXACT_ROLLING, ROLLING
from pipeline.features.walker import OFFSET_FUNCTIONS, Node, literal_int

_OPAQUE = frozenset({"Column", "Literal", "Field", "Selector"})


def is_fixed_trailing_window(node: Node) -> bool:
    """A rolling min or max over the last ``window_size`` rows, null until the window is full.

    Only min and max: they keep no running sum, so the whole-column value at a row depends on
    that row's window alone, bit for bit. Weighted, centred or early-starting windows
    (``min_samples < window_size``) are refused: the engine keeps ``.over`` for them.
    """
    opts = node.options
    size = opts.get("window_size")
    return (
        node.name == ROLLING
        and str(opts.get("function")) in EXACT_ROLLING
        and isinstance(size, int)
        and size >= 1
        and min_samples(opts) == size
        and opts.get("center") is False
        and opts.get("weights") is None
    )


# Polars renamed the option in its serialised form (2.1: min_periods, 2.2: min_samples). The
# format is private: tests/unit/test_polars_format.py fails by name when it moves again.
MIN_SAMPLES_KEYS = ("min_samples", "min_periods")


def min_samples(options: dict[str, Any]) -> object:
    """A rolling window's minimum sample count, under whichever key this Polars writes."""
    return next((options[key] for key in MIN_SAMPLES_KEYS if key in options), None)


@cache
def rows_back(serialized: str) -> int | None:
    """Rows before t that a shift/rolling-only expression reads; None if not computable."""
    try:
        return _reach(json.loads(serialized))
    except _UnboundedError:
        return None


class _UnboundedError(Exception):
    """A node whose reach cannot be read statically (a computed offset, an odd shape)."""


def _reach(value: Any) -> int:
    if isinstance(value, list):
        return max((_reach(item) for item in value), default=0)
    if not isinstance(value, dict):
        return 0
    best = 0
    for key, item in value.items():
        if key == "Function" and isinstance(item, dict):
            best = max(best, _function_reach(item))
        elif key not in _OPAQUE:
            best = max(best, _reach(item))
    return best


def _function_reach(payload: dict[str, Any]) -> int:
    inputs = payload.get("input", [])
    label = payload.get("function")
    name = label if isinstance(label, str) else next(iter(label)) if isinstance(label, dict) else ""
    below = _reach(inputs)
    if name in OFFSET_FUNCTIONS:
        offset = literal_int(inputs[1]) if isinstance(inputs, list) and len(inputs) > 1 else None
        if offset is None or offset < 0:
            raise _UnboundedError(name)
        return below + offset
    if name == ROLLING:
        size = label[ROLLING].get("options", {}).get("window_size")  # type: ignore[index]
        if not isinstance(size, int):
            raise _UnboundedError(name)
        return below + size - 1
    return below
