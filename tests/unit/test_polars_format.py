"""Canary: every fact the guard and the engine read from Polars' serialised expressions.

Polars documents its ``meta.serialize`` output as unstable across versions, and the guard and
the engine's fast paths read it (``pipeline/features/walker.py``, ``reach.py``, ``hoist.py``).
When a Polars release moves a key (2.2 renamed ``min_periods`` to ``min_samples``), the code
must not silently fall back to slower paths or, worse, miss a forbidden node: this file fails
first, by name, and says which fact moved. Fix the reader, not these expectations.
"""

from __future__ import annotations

import polars as pl
import pytest

from pipeline.features.engine import _bounded_window, expression_kind
from pipeline.features.guard import LookAheadError, assert_causal
from pipeline.features.reach import is_fixed_trailing_window, min_samples, rows_back
from pipeline.features.walker import Node, serialize, walk

X = pl.col("close")


def _node(expr: pl.Expr, name: str) -> Node:
    found = [node for node in walk(expr) if node.name == name]
    assert found, f"Polars {pl.__version__}: no {name!r} node in {serialize(expr)}"
    return found[0]


@pytest.mark.parametrize("window", [3, 20])
def test_rolling_min_samples_is_read(window: int) -> None:
    node = _node(X.rolling_max(window), "RollingExpr")
    assert min_samples(node.options) == window, node.options
    assert node.options.get("window_size") == window, node.options
    assert node.options.get("center") is False, node.options


def test_fixed_trailing_windows_are_recognised() -> None:
    assert is_fixed_trailing_window(_node(X.rolling_max(20), "RollingExpr"))
    assert is_fixed_trailing_window(_node(X.rolling_min(5), "RollingExpr"))
    assert not is_fixed_trailing_window(_node(X.rolling_max(5, min_samples=1), "RollingExpr"))
    assert not is_fixed_trailing_window(_node(X.rolling_max(5, center=True), "RollingExpr"))


def test_reach_adds_shifts_and_windows() -> None:
    assert rows_back(serialize(X.shift(1).rolling_max(20))) == 20
    assert rows_back(serialize(X.diff(3))) == 3
    assert rows_back(serialize(X.log())) == 0


def test_engine_fast_paths_are_taken() -> None:
    # Same kinds and fast paths as on the Polars the engine was measured with.
    assert expression_kind(X.log()) == "point"
    assert expression_kind(X.shift(2)) == "shift"
    assert expression_kind(X.rolling_mean(5)) == "window"
    assert _bounded_window(serialize(X.shift(1).rolling_max(10)), 10)
    assert not _bounded_window(serialize(X.shift(1).rolling_max(10)), 9)


@pytest.mark.parametrize(
    "expr",
    [
        X.rolling_mean(5, center=True),
        X.cum_sum(reverse=True),
        X.fill_null(strategy="backward"),
        X.shift(-1),
        X.mean(),
        X.rank(),
    ],
    ids=["centred", "reverse", "backfill", "lead", "aggregate", "rank"],
)
def test_guard_still_sees_forbidden_nodes(expr: pl.Expr) -> None:
    with pytest.raises(LookAheadError):
        assert_causal(expr, "canary")
