"""The expression walker: typed nodes from Polars' serialised tree, read by the causality guard.

The walker must find every function the guard looks for, and must not mistake data (a column,
alias or string literal named like a function) for a function.
"""

from __future__ import annotations

import polars as pl
import pytest

from pipeline.features.walker import Node, literal_int, walk

X = pl.col("close")


def names(expr: pl.Expr) -> list[str]:
    return [node.name for node in walk(expr)]


def only(expr: pl.Expr, name: str) -> Node:
    (node,) = (n for n in walk(expr) if n.name == name)
    return node


def test_nodes_come_parents_first_in_serialised_order() -> None:
    expr = X.shift(-2).rolling_mean(3) / pl.col("open")
    assert names(expr) == ["BinaryExpr", "RollingExpr", "Shift", "Column", "Literal", "Column"]
    shift = only(expr, "Shift")
    assert shift.variant == "Function"
    assert shift.path == "expr.BinaryExpr.left.Function.input[0].Function.Shift"
    assert [n.payload for n in walk(expr) if n.name == "Column"] == ["close", "open"]


@pytest.mark.parametrize(
    ("expr", "name", "offsets"),
    [
        (X.shift(3), "Shift", (3,)),
        (X.shift(-1), "Shift", (-1,)),
        (X.diff(2), "Diff", (2,)),
        (X.pct_change(-1), "PctChange", (-1,)),
        (X.shift(1, fill_value=0.0), "ShiftAndFill", (1,)),
        (X.shift(pl.lit(-1, dtype=pl.Int32)), "Shift", (-1,)),
        (X.shift(pl.lit(1) - 2), "Shift", (None,)),  # computed: not read as its first literal
        (X.shift(pl.len().cast(pl.Int64) - 9), "Shift", (None,)),
        (X.shift(pl.col("n")), "Shift", (None,)),
        (X.rolling_mean(3), "RollingExpr", ()),  # not a shift: no offsets at all
    ],
    ids=lambda v: str(v) if isinstance(v, tuple) else None,
)
def test_offsets_are_literal_values_or_none(
    expr: pl.Expr, name: str, offsets: tuple[int | None, ...]
) -> None:
    assert only(expr, name).offsets == offsets


def test_literal_int_reads_plain_integers_only() -> None:
    assert literal_int(5) == 5
    assert literal_int({"Literal": {"Dyn": {"Int": -2}}}) == -2
    assert literal_int({"Literal": {"Scalar": {"UInt8": 3}}}) == 3
    for not_int in (
        True,
        {"Literal": {"Dyn": {"Float": 1.0}}},
        {"Literal": {"Scalar": {"String": "5"}}},
    ):
        assert literal_int(not_int) is None


def test_window_specs_and_flags_are_options() -> None:
    rolling = only(X.rolling_mean(5, center=True), "RollingExpr")
    assert rolling.options["window_size"] == 5
    assert rolling.options["center"] is True
    assert only(X.ewm_mean(alpha=0.5), "EwmMean").options["alpha"] == 0.5
    assert only(X.cum_sum(reverse=True), "CumSum").options == {"reverse": True}
    # options stop at child nodes: the outer function does not inherit the inner one's flags
    assert only(X.cum_sum(reverse=True).abs(), "Abs").options == {}


def test_tags_qualify_namespaced_functions() -> None:
    assert only(X.fill_null(strategy="backward"), "FillNullWithStrategy").tag == "Backward"
    assert only(X.is_duplicated(), "Boolean").qualified == "Boolean.IsDuplicated"
    assert only(pl.col("date").dt.weekday(), "TemporalExpr").qualified == "TemporalExpr.WeekDay"
    assert only(X.shift(1), "Literal").tag == "Dyn"
    assert only(X, "Column").tag is None  # a column's payload is its name, not a variant


def test_top_level_and_unit_variants_are_nodes() -> None:
    assert names(X.sort()) == ["Sort", "Column"]
    assert names(X.gather([1, 0]))[:3] == ["Gather", "Column", "Literal"]
    assert names(X - X.mean()) == ["BinaryExpr", "Column", "Agg", "Mean", "Column"]
    assert names(X.over("ticker")) == ["Over", "Column", "Column"]
    assert names(X / pl.len()) == ["BinaryExpr", "Column", "Len"]


# Data spelled like functions: column names, an alias, string literals and a struct field.
NAMED_LIKE_FUNCTIONS = {
    "column_Shift": pl.col("Shift") * 2,
    "column_rolling": pl.col("rolling") + pl.col("Rolling_vol"),
    "column_Overnight": pl.col("Overnight_gap") / X,
    "column_Cum": pl.col("Cum") - X,
    "alias_Diff": X.alias("Diff"),
    "literal_PctChange": pl.when(X > 1).then(pl.lit("PctChange")).otherwise(pl.lit("Agg")),
    "alias_Sort_in_struct": pl.struct(X.alias("Sort")),
}
FUNCTION_NAMES = {"Shift", "Diff", "PctChange", "Sort", "Agg", "Over", "Len"}


@pytest.mark.parametrize("case", list(NAMED_LIKE_FUNCTIONS))
def test_names_are_data_not_nodes(case: str) -> None:
    found = {n.name for n in walk(NAMED_LIKE_FUNCTIONS[case])}
    assert not found & FUNCTION_NAMES
    assert not any(n.startswith(("Rolling", "Ewm", "Cum")) for n in found)


# One expression per stateful or shifting function, and the node the walker finds for it.
SEARCHED: dict[str, tuple[pl.Expr, str]] = {
    "rolling": (X.rolling_std(5), "RollingExpr"),
    "rolling_by": (X.rolling_mean_by("date", "3d"), "RollingExprBy"),
    "rolling_corr": (pl.rolling_corr(X, pl.col("open"), window_size=5), "RollingExpr"),
    "ewm_mean": (X.ewm_mean(alpha=0.5), "EwmMean"),
    "ewm_std": (X.ewm_std(alpha=0.5), "EwmStd"),
    "cum_sum": (X.cum_sum(), "CumSum"),
    "cum_max": (X.cum_max(), "CumMax"),
    "cum_count": (X.cum_count(), "CumCount"),
    "over": (X.mean().over("ticker"), "Over"),
    "agg": (X / X.max(), "Agg"),
    "shift": (X.shift(2), "Shift"),
    "diff": (X.diff(1), "Diff"),
    "pct_change": (X.pct_change(1), "PctChange"),
}


@pytest.mark.parametrize("case", list(SEARCHED))
def test_walker_finds_every_stateful_or_shifting_function(case: str) -> None:
    expr, name = SEARCHED[case]
    assert name in names(expr)
