"""Canary: every fact the causality guard reads from Polars' serialised expressions.

Polars documents its ``meta.serialize`` output as unstable across versions, and the guard
reads it (``pipeline/features/walker.py``; the engine does not). When a Polars release moves
a key (2.2 renamed ``min_periods`` to ``min_samples``), the guard must not miss a forbidden
node: this file fails first, by name, and says which fact moved. Fix the reader, not these
expectations.
"""

from __future__ import annotations

import polars as pl
import pytest

from pipeline.features.guard import LookAheadError, assert_causal
from pipeline.features.walker import Node, serialize, walk

X = pl.col("close")


def _node(expr: pl.Expr, name: str) -> Node:
    found = [node for node in walk(expr) if node.name == name]
    assert found, f"Polars {pl.__version__}: no {name!r} node in {serialize(expr)}"
    return found[0]


@pytest.mark.parametrize("window", [3, 20])
def test_rolling_center_is_read(window: int) -> None:
    assert _node(X.rolling_max(window), "RollingExpr").options.get("center") is False
    node = _node(X.rolling_mean(window, center=True), "RollingExpr")
    assert node.options.get("center") is True, node.options


def test_reverse_flag_is_read() -> None:
    assert _node(X.cum_sum(reverse=True), "CumSum").options.get("reverse") is True
    assert _node(X.cum_sum(), "CumSum").options.get("reverse") is False


def test_shift_offsets_are_read() -> None:
    assert _node(X.shift(3), "Shift").offsets == (3,)
    assert _node(X.diff(2), "Diff").offsets == (2,)
    assert _node(X.shift(-1), "Shift").offsets == (-1,)


def test_backward_fill_is_tagged() -> None:
    assert _node(X.fill_null(strategy="backward"), "FillNullWithStrategy").tag == "Backward"


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
