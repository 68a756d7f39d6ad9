"""The engine's fast paths are bit-identical to computing every feature with .over(ticker)."""

from __future__ import annotations

import polars as pl
import pytest
from support import EVERY_PATH, interleaved_with_bench

from pipeline.features.engine import TICKER, add_features, collect, expression_kind
from pipeline.features.spec import FeatureDef, build_feature_defs


@pytest.fixture(scope="module")
def panel(panel: pl.DataFrame) -> pl.DataFrame:
    """The sample panel with the benchmark's close, rows interleaved so sorting is tested."""
    return interleaved_with_bench(panel)


def test_fast_paths_equal_over_ticker_bit_for_bit(panel: pl.DataFrame) -> None:
    defs = build_feature_defs(EVERY_PATH)
    kinds = {expression_kind(d.expr) for d in defs}
    assert kinds == {"point", "shift", "window"}  # every path is exercised
    fast = collect(add_features(panel.lazy(), defs))
    slow = panel.sort(TICKER, "date").with_columns(
        [d.expr.over(TICKER).alias(d.name) for d in defs]
    )
    for d in defs:
        assert fast[d.name].equals(slow[d.name]), d.name


def test_expression_kinds() -> None:
    close = pl.col("close")
    assert expression_kind((pl.col("high") - pl.col("low")) / close) == "point"
    assert expression_kind(close.shift(3) / close) == "shift"
    assert expression_kind(close.diff(1)) == "shift"
    assert expression_kind(close.rolling_mean(5)) == "window"
    assert expression_kind(close.ewm_mean(alpha=0.5)) == "window"
    assert expression_kind(close.cum_sum()) == "window"


# The path each shipped family takes, pinned: the walker must not move any of them.
SHIPPED_SHIFT = {"logret_1", "logret_5", "logret_20", "ret_1", "ret_3", "lag_volume_1"}
SHIPPED_SHIFT |= {"lag_volume_7", "excess_logret_spy_20"}
SHIPPED_POINT = {"hl_range", "cal_day_of_week", "cal_month", "cal_days_to_month_end"}


def test_every_family_keeps_its_path() -> None:
    kinds = {d.name: expression_kind(d.expr) for d in build_feature_defs(EVERY_PATH)}
    assert {n for n, k in kinds.items() if k == "point"} == SHIPPED_POINT
    assert {n for n, k in kinds.items() if k == "shift"} == SHIPPED_SHIFT
    assert all(k == "window" for n, k in kinds.items() if n not in SHIPPED_POINT | SHIPPED_SHIFT)


# Two tickers, rows interleaved by date, nulls at each ticker's start and inside.
TWO = pl.DataFrame(
    {
        TICKER: ["A", "B"] * 4,
        "date": [0, 0, 1, 1, 2, 2, 3, 3],
        "close": [1.0, None, 2.0, 6.0, None, 7.0, 4.0, None],
        "Shift": [1.0, 5.0, 2.0, 6.0, 3.0, 7.0, 4.0, 8.0],  # a column named like a function
    }
)
C = pl.col("close")
# Expressions the old substring classifier sent down the wrong fast path: a pointwise one masked
# because a column or string was named like a function, and stateful ones computed across
# ticker boundaries because no rule named them (all checked against .over(ticker) below).
MISROUTED: dict[str, tuple[pl.Expr, int]] = {  # name: (expression, warm-up)
    "column_named_shift": (pl.col("Shift") * 2, 2),
    "string_named_diff": (pl.when(C > 1).then(pl.lit("Diff")).otherwise(pl.lit("x")), 1),
    "shift_and_fill": (C.shift(1, fill_value=0.0), 1),
    "forward_fill": (C.forward_fill(), 0),
    "fill_null_mean": (C.fill_null(strategy="mean"), 0),
    "divide_by_len": (C / pl.len(), 0),
    "int_range_len": (pl.int_range(pl.len()), 0),
    "is_duplicated": (C.is_duplicated(), 0),
    "is_first_distinct": (C.is_first_distinct(), 0),
    "rle_id": (C.rle_id(), 0),
}


@pytest.mark.parametrize("name", list(MISROUTED))
def test_misrouted_expressions_equal_over_ticker(name: str) -> None:
    expr, warmup = MISROUTED[name]
    fast = collect(add_features(TWO.lazy(), [FeatureDef(name, expr, warmup)]))
    slow = TWO.sort(TICKER, "date").with_columns(expr.over(TICKER).alias(name))
    assert fast[name].equals(slow[name])


def test_names_like_functions_are_pointwise() -> None:
    assert expression_kind(pl.col("Shift") * 2) == "point"
    assert expression_kind(pl.col("Overnight_gap") + pl.col("Rolling")) == "point"
    assert expression_kind(C.alias("Diff")) == "point"
    assert expression_kind(pl.lit("PctChange") + pl.lit("Cum")) == "point"


ROWWISE = {
    "abs_log1p": C.abs().log1p(),
    "clip_sqrt_round": C.clip(0.0, 5.0).sqrt().round(3),
    "sign_negate_pow": (-C).sign() * C.pow(2),
    "nan_checks": pl.when(C.is_nan() | C.is_null()).then(0.0).otherwise(C.fill_null(1.0)),
    "horizontal": pl.max_horizontal(C, pl.col("Shift")) - pl.min_horizontal(C, 1.0),
}


@pytest.mark.parametrize("name", list(ROWWISE))
def test_known_rowwise_functions_skip_partitioning_and_match(name: str) -> None:
    expr = ROWWISE[name]
    assert expression_kind(expr) == "point"
    fast = collect(add_features(TWO.lazy(), [FeatureDef(name, expr, 0)]))
    slow = TWO.sort(TICKER, "date").with_columns(expr.over(TICKER).alias(name))
    assert fast[name].equals(slow[name])
