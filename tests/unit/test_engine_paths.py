"""The engine's declared paths: shared stages once per ticker, masked whole-column windows.

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

from pipeline.features import library as lib
from pipeline.features.engine import TICKER, _plan, add_features, collect
from pipeline.features.spec import (
    FeatureDef,
    FeaturesConfig,
    build_feature_defs,
)
from pipeline.features.stages import LOGRET_1, Stage


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


def test_a_plan_that_does_not_rebuild_its_expression_is_not_used(panel: pl.DataFrame) -> None:
    """A declaration that fell behind its family's formula costs speed, never a wrong value."""
    wrong = Stage("x", lambda r: lib.rolling_mean(r, window=5), (LOGRET_1,))
    defs = [FeatureDef("std5", lib.rolling_std(LOGRET_1.full(), window=5), 5, plan=wrong)]
    stages, _, temporary = _plan(defs)
    assert stages == [] and temporary == []
    fast = collect(add_features(panel.lazy(), defs))
    assert fast["std5"].equals(_over(panel, defs)["std5"])


def test_a_warmup_shorter_than_the_reach_keeps_over(panel: pl.DataFrame) -> None:
    """A too-short warm-up must never read the previous ticker: such a def keeps .over."""
    defs = [FeatureDef("short", C.shift(1).rolling_mean(3), 2)]
    fast = collect(add_features(panel.lazy(), defs))
    assert fast["short"].equals(_over(panel, defs)["short"])


def test_shared_stages_are_computed_once() -> None:
    """MACD: EMA fast, EMA slow, the line, the signal; Bollinger: one mean, one std; the log
    return once for every family that reads it."""
    defs = build_feature_defs(EVERY_PATH)
    macd = [d for d in defs if d.name.startswith("macd_")]
    assert [len(level) for level in _plan(macd)[0]] == [2, 1, 1]
    bands = [d for d in defs if d.name.startswith("bb_")]
    assert _plan(bands)[2] == ["__stage_rolling_mean_close_20", "__stage_band_std_close_20"]
    _, _, temporary = _plan(defs)
    assert temporary.count("__stage_logret_1") == 1 and len(temporary) == len(set(temporary))


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
