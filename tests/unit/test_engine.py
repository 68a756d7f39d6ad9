"""The engine's fast paths are bit-identical to computing every feature with .over(ticker)."""

from __future__ import annotations

import polars as pl
import pytest
from support import EVERY_PATH, REPO, interleaved_with_bench

from pipeline.config import load_config
from pipeline.features.engine import TICKER, add_features, collect
from pipeline.features.spec import FeatureDef, build_feature_defs


@pytest.fixture(scope="module")
def panel(panel: pl.DataFrame) -> pl.DataFrame:
    """The sample panel with the benchmark's close, rows interleaved so sorting is tested."""
    return interleaved_with_bench(panel)


def test_fast_paths_equal_over_ticker_bit_for_bit(panel: pl.DataFrame) -> None:
    defs = build_feature_defs(EVERY_PATH)
    assert {d.plan.path for d in defs if d.plan is not None} == {"point", "masked", "ticker"}
    fast = collect(add_features(panel.lazy(), defs))
    slow = panel.sort(TICKER, "date").with_columns(
        [d.expr.over(TICKER).alias(d.name) for d in defs]
    )
    for d in defs:
        assert fast[d.name].equals(slow[d.name]), d.name


# The path each family's def takes, pinned: a declaration must not move one silently.
PINNED_MASKED = {"logret_5", "logret_20", "ret_3", "lag_volume_1", "lag_volume_7"}
PINNED_MASKED |= {"rolling_min_logret_1_5", "rolling_max_close_10", "dist_max_close_60"}
PINNED_MASKED |= {"dist_min_close_60", "excess_logret_spy_20"}
PINNED_TICKER = {"rolling_sum_logret_1_3", "rolling_skew_logret_1_20", "ewm_vol_logret_1_10"}
PINNED_TICKER |= {"rsi_14", "natr_14", "stoch_d_14_3", "obv_ratio_20", "beta_spy_20"}
PINNED_TICKER |= {"corr_spy_20"}


def test_every_family_declares_its_path_and_plans_every_def() -> None:
    defs = build_feature_defs(EVERY_PATH)
    shipped = build_feature_defs(load_config(REPO / "conf").model.features)
    for d in [*defs, *shipped]:  # a plan that no longer rebuilds its def would cost speed
        assert d.plan is not None and d.plan.full().meta.eq(d.expr), d.name
    paths = {d.name: d.plan.path for d in defs if d.plan is not None}
    assert {n for n, p in paths.items() if p == "masked"} == PINNED_MASKED
    assert {n for n, p in paths.items() if p == "ticker"} == PINNED_TICKER
    assert all(p == "point" for n, p in paths.items() if n not in PINNED_MASKED | PINNED_TICKER)


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


ROWWISE = {
    "abs_log1p": C.abs().log1p(),
    "clip_sqrt_round": C.clip(0.0, 5.0).sqrt().round(3),
    "sign_negate_pow": (-C).sign() * C.pow(2),
    "nan_checks": pl.when(C.is_nan() | C.is_null()).then(0.0).otherwise(C.fill_null(1.0)),
    "horizontal": pl.max_horizontal(C, pl.col("Shift")) - pl.min_horizontal(C, 1.0),
}


@pytest.mark.parametrize("name", list(ROWWISE))
def test_hand_written_defs_without_a_plan_equal_over_ticker(name: str) -> None:
    expr = ROWWISE[name]
    fast = collect(add_features(TWO.lazy(), [FeatureDef(name, expr, 0)]))
    slow = TWO.sort(TICKER, "date").with_columns(expr.over(TICKER).alias(name))
    assert fast[name].equals(slow[name])
