"""The engine's fast paths are bit-identical to computing every feature with .over(ticker)."""

from __future__ import annotations

import polars as pl
import pytest
from support import SAMPLE

from pipeline.data.files import FileSource
from pipeline.features.engine import TICKER, add_features, collect, expression_kind
from pipeline.features.spec import (
    Bollinger,
    Calendar,
    Ewm,
    FeaturesConfig,
    Lags,
    Macd,
    Market,
    Returns,
    Rolling,
    Stochastic,
    Windowed,
    build_feature_defs,
)

EVERY = FeaturesConfig(
    simple_return=Returns(windows=(1, 3)),
    lag=Lags(of="volume", lags=(1, 7)),
    rolling_min=Rolling(windows=(5,)),
    rolling_max=Rolling(of="close", windows=(10,)),
    rolling_sum=Rolling(windows=(3,)),
    rolling_skew=Rolling(windows=(20,)),
    ewm_mean=Ewm(of="close", spans=(5,)),
    ewm_vol=Ewm(spans=(10,)),
    rsi=Windowed(windows=(14,)),
    macd=Macd(),
    bollinger=Bollinger(),
    natr=Windowed(windows=(14,)),
    stochastic=Stochastic(),
    obv_ratio=Windowed(windows=(20,)),
    dist_max=Rolling(of="close", windows=(60,)),
    dist_min=Rolling(of="close", windows=(60,)),
    volume_ratio=Windowed(windows=(5,)),
    calendar=Calendar(),
    market=Market(windows=(20,)),
)


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    frames = [FileSource(SAMPLE / f"{t}.csv").load().frame for t in ("NVDA", "SPY", "QQQ")]
    spy = frames[1].select("date", pl.col("close").alias("bench_close"))
    # interleave rows so that sorting is exercised too
    return pl.concat(frames).join(spy, on="date", how="left").sort("date", "ticker")


def test_fast_paths_equal_over_ticker_bit_for_bit(panel: pl.DataFrame) -> None:
    defs = build_feature_defs(EVERY)
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
