"""The engine's whole-column paths: rolling windows masked by warm-up, smoothers hoisted.

Bit-identity with ``.over(ticker)`` is not required of rolling windows computed on the whole
sorted column (a running sum carries the previous ticker's rounding into the next); what is:
the same missing positions, values within 1e-12 of each column's scale, and identical bits
from run to run whatever the input's chunking.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from support import EVERY_PATH, interleaved_with_bench

from pipeline.features.engine import TICKER, add_features, collect
from pipeline.features.hoist import Hoisted
from pipeline.features.reach import rows_back
from pipeline.features.spec import (
    FeatureDef,
    FeaturesConfig,
    build_feature_defs,
)
from pipeline.features.walker import serialize


@pytest.fixture(scope="module")
def panel(panel: pl.DataFrame) -> pl.DataFrame:
    """The sample panel with the benchmark's close, rows interleaved so sorting is tested."""
    return interleaved_with_bench(panel)


C = pl.col("close")


def _over(frame: pl.DataFrame, defs: list[FeatureDef]) -> pl.DataFrame:
    return frame.sort(TICKER, "date").with_columns(
        [d.expr.over(TICKER).alias(d.name) for d in defs]
    )


def test_every_family_matches_over_ticker_to_1e_12(panel: pl.DataFrame) -> None:
    defs = build_feature_defs(EVERY_PATH)
    fast, slow = collect(add_features(panel.lazy(), defs)), _over(panel, defs)
    for d in defs:
        ours, ref = fast[d.name].cast(pl.Float64), slow[d.name].cast(pl.Float64)
        assert ours.is_null().equals(ref.is_null()), d.name
        a, b = ours.fill_null(np.nan).to_numpy(), ref.fill_null(np.nan).to_numpy()
        assert (np.isnan(a) == np.isnan(b)).all(), d.name
        scale = float(np.nanmax(np.abs(b))) if not np.isnan(b).all() else 1.0
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * scale, err_msg=d.name)


def test_bit_identical_run_to_run_whatever_the_chunking(panel: pl.DataFrame) -> None:
    defs = build_feature_defs(EVERY_PATH)
    once = collect(add_features(panel.lazy(), defs))
    half = panel.height // 2
    chunked = pl.concat([panel[:half], panel[half:]], rechunk=False)
    assert chunked.n_chunks() > 1
    for frame in (panel, chunked):
        assert collect(add_features(frame.lazy(), defs)).equals(once)


def test_rows_back_adds_shifts_and_windows() -> None:
    assert rows_back(serialize(C)) == 0
    assert rows_back(serialize(C.shift(2))) == 2
    assert rows_back(serialize(C.shift(1).rolling_std(20))) == 20
    assert rows_back(serialize(C.rolling_max(5) / C.diff(3).rolling_mean(4))) == 6
    assert rows_back(serialize(C.shift(pl.lit(1) + 1))) is None


def test_a_warmup_shorter_than_the_reach_keeps_over(panel: pl.DataFrame) -> None:
    """A too-short warm-up must never read the previous ticker: such a def keeps .over."""
    defs = [FeatureDef("short", C.shift(1).rolling_mean(3), 2)]
    fast = collect(add_features(panel.lazy(), defs))
    assert fast["short"].equals(_over(panel, defs)["short"])


def test_macd_smoothers_are_computed_once() -> None:
    """Three MACD columns, three distinct smoothers (EMA fast, EMA slow, the signal)."""
    hoisted = Hoisted()
    macd = [d for d in build_feature_defs(EVERY_PATH) if d.name.startswith("macd_")]
    for d in macd:
        assert hoisted.rewrite(serialize(d.expr)) is not None
    assert sorted(hoisted.levels.values()) == [1, 1, 2]


def test_a_plan_is_reused_for_the_same_defs_and_only_for_them() -> None:
    from pipeline.features import engine

    defs = build_feature_defs(FeaturesConfig())
    assert engine._compiled(defs) is engine._compiled(list(defs))  # same def objects
    other = build_feature_defs(FeaturesConfig())  # equal content, new objects
    assert engine._compiled(other) is not engine._compiled(defs)
    for _ in range(engine._PLANS_KEPT + 5):
        engine._compiled(build_feature_defs(FeaturesConfig()))
    assert len(engine._PLANS) <= engine._PLANS_KEPT


def test_many_tickers_shuffled_equal_over_ticker_bit_for_bit() -> None:
    """The engine's per-ticker kernels concatenate each ticker's results in ticker order
    (``mapping_strategy="explode"``): on 40 tickers of shuffled rows, still bit for bit what
    ``.over(ticker)`` puts back row by row."""
    rng = np.random.default_rng(5)
    n, days = 40, 300
    first = dt.date(2020, 1, 1)
    dates = pl.date_range(first, first + dt.timedelta(days - 1), eager=True)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, days)), axis=1))
    frame = pl.DataFrame(
        {
            "ticker": np.repeat([f"T{i:02d}" for i in range(n)], days),
            "date": np.tile(dates.to_numpy(), n),
            "open": close.ravel() * 1.001,
            "high": close.ravel() * 1.02,
            "low": close.ravel() * 0.98,
            "close": close.ravel(),
            "volume": rng.uniform(1e5, 1e6, n * days),
            "bench_close": np.tile(100 * np.exp(np.cumsum(rng.normal(0, 0.01, days))), n),
        }
    ).sample(fraction=1.0, shuffle=True, seed=1)
    defs = build_feature_defs(EVERY_PATH)
    fast = collect(add_features(frame.lazy(), defs))
    slow = _over(frame, defs)
    assert fast.select("ticker", "date").equals(slow.select("ticker", "date"))
    for d in defs:
        assert fast[d.name].equals(slow[d.name]), d.name
