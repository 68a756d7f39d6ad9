"""The expression walker: typed nodes from Polars' serialised tree, shared by guard and engine.

The engine used to classify expressions by searching their JSON text (``_substring_kind``
below, kept verbatim as the reference). The walker must find every function that search was
after, and must not mistake data (a column, alias or string literal named like a function)
for a function, which the search did.
"""

from __future__ import annotations

from functools import cache

import polars as pl
import pytest
from support import REPO

from pipeline.config import load_config
from pipeline.features.engine import Kind, expression_kind
from pipeline.features.reach import min_samples
from pipeline.features.spec import build_feature_defs
from pipeline.features.walker import Node, literal_int, serialize, walk

X = pl.col("close")


@cache
def _substring_kind(serialized: str) -> Kind:
    """The engine's classifier before the walker, verbatim."""
    window_nodes = ("Rolling", "Ewm", "Cum", "Window", "Over", "Agg")
    shift_nodes = ('"Shift"', '"Diff"', '{"Diff"', '"PctChange"')
    if any(node in serialized for node in window_nodes):
        return "window"
    if any(node in serialized for node in shift_nodes):
        return "shift"
    return "point"


def old_kind(expr: pl.Expr) -> Kind:
    return _substring_kind(serialize(expr))


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
    assert min_samples(rolling.options) == 5
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


# The substring search misrouted these; the walker does not (the engine test checks the values).
MISCLASSIFIED_BEFORE: dict[str, tuple[pl.Expr, Kind, Kind]] = {  # (expr, old kind, kind)
    "column_Shift": (pl.col("Shift") * 2, "shift", "point"),
    "literal_Diff": (pl.when(X > 1).then(pl.lit("Diff")).otherwise(pl.lit("x")), "shift", "point"),
    "alias_PctChange": (X.alias("PctChange"), "shift", "point"),
    "column_Overnight": (pl.col("Overnight_gap") / X, "window", "point"),
    "column_Rolling": (pl.col("Rolling") * X, "window", "point"),
    "literal_Cum": (pl.lit("Cum") + pl.col("sector"), "window", "point"),
    # stateful, but no search string names them, so they skipped .over(ticker)
    "shift_and_fill": (X.shift(1, fill_value=0.0), "point", "window"),
    "forward_fill": (X.forward_fill(), "point", "window"),
    "divide_by_len": (X / pl.len(), "point", "window"),
    "is_duplicated": (X.is_duplicated(), "point", "window"),
}


@pytest.mark.parametrize("case", list(MISCLASSIFIED_BEFORE))
def test_what_substring_search_got_wrong(case: str) -> None:
    expr, before, now = MISCLASSIFIED_BEFORE[case]
    assert old_kind(expr) == before
    assert expression_kind(expr) == now


# One expression per function the search looked for, and the node the walker finds for it.
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
def test_walker_finds_every_function_the_search_found(case: str) -> None:
    expr, name = SEARCHED[case]
    assert name in names(expr)
    assert expression_kind(expr) == old_kind(expr)


_ORDER: dict[Kind, int] = {"point": 0, "shift": 1, "window": 2}


def test_shipped_features_classify_as_before_and_nothing_became_less_safe() -> None:
    defs = build_feature_defs(load_config(REPO / "conf").model.features)
    for d in defs:
        assert expression_kind(d.expr) == old_kind(d.expr), d.name
    others = [X.abs().log(), X.clip(0.0, 1.0).sqrt(), X.rank(), X.sort(), X.interpolate()]
    others += [expr for expr, _ in SEARCHED.values()]
    for expr in others:  # the walker may only be more careful: point < shift < window
        assert _ORDER[expression_kind(expr)] >= _ORDER[old_kind(expr)], expr
