"""Panels on a calendar the benchmark does not share, through the real DuckDB warehouse.

Oracle for the benchmark close: a plain bisect over SPY's dates (the last close at or before
each date). Leakage: SPY's rows after a cut date are replaced with random values in the
warehouse, and every market feature at or before the cut must hold bit for bit.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from realdata import business_day_panel, with_stale_stretch
from support import SAMPLE

from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore
from pipeline.features.engine import add_features
from pipeline.features.spec import BENCH_CLOSE, FeaturesConfig, Market, build_feature_defs

TICKERS = ("ALPHA", "LATE", "GONE")
CUT = dt.date(2017, 7, 4)  # a US holiday: SPY has no row, the panel does


def _store(tmp_path: Path, panel: pl.DataFrame) -> DuckDBStore:
    store = DuckDBStore(tmp_path / "wh.duckdb")
    path = tmp_path / "panel.csv"
    panel.write_csv(path)
    store.upsert(FileSource(path).load())
    store.upsert(FileSource(SAMPLE / "SPY.csv").load())
    return store


@pytest.fixture
def panel() -> pl.DataFrame:
    return business_day_panel(TICKERS)


def _market_defs() -> list:  # type: ignore[type-arg]
    return build_feature_defs(FeaturesConfig(market=Market(windows=(20, 60))))


def test_benchmark_close_is_the_last_known_one(tmp_path: Path, panel: pl.DataFrame) -> None:
    hist = _store(tmp_path, panel).history(TICKERS, "SPY").collect()
    spy = pl.read_csv(SAMPLE / "SPY.csv", try_parse_dates=True)
    days, closes = spy.get_column("date").to_list(), spy.get_column("close").to_list()
    holidays = 0
    for day, got in zip(hist.get_column("date"), hist.get_column(BENCH_CLOSE), strict=True):
        i = bisect.bisect_right(days, day) - 1
        assert got == closes[i], day
        holidays += days[i] != day
    assert holidays > 3 * 60  # ~9 US holidays a year, for each of the three tickers
    assert hist.get_column(BENCH_CLOSE).null_count() == 0


def test_no_market_window_is_voided_by_a_holiday(tmp_path: Path, panel: pl.DataFrame) -> None:
    hist = _store(tmp_path, panel).history(TICKERS, "SPY").collect()
    out = add_features(hist, _market_defs())
    for d in _market_defs():
        col = out.get_column(d.name)
        # Only each ticker's own warm-up is null: the listing and delisting change nothing.
        assert col.null_count() == d.warmup * len(TICKERS), d.name
        assert col.is_finite().all(), d.name


def test_market_features_ignore_later_benchmark_rows(tmp_path: Path, panel: pl.DataFrame) -> None:
    store = _store(tmp_path, panel)
    before = add_features(store.history(TICKERS, "SPY").collect(), _market_defs())
    spy = FileSource(SAMPLE / "SPY.csv").load()
    later = spy.frame.filter(pl.col("date") > CUT)
    noise = np.random.default_rng(3).uniform(1.0, 900.0, later.height)
    changed = later.with_columns(
        pl.Series("close", noise), pl.Series("high", noise * 1.01), pl.Series("low", noise * 0.99)
    ).with_columns(pl.min_horizontal("open", "close", "high").alias("open"))
    changed = changed.with_columns(pl.max_horizontal("open", "low").alias("open"))
    store.upsert(replace(spy, frame=changed))
    after = add_features(store.history(TICKERS, "SPY").collect(), _market_defs())
    names = [d.name for d in _market_defs()]
    past = pl.col("date") <= CUT
    assert after.filter(past).select(names).equals(before.filter(past).select(names))
    assert not after.filter(~past).select(names).equals(before.filter(~past).select(names))


def test_a_suspended_stock_gives_no_infinity(panel: pl.DataFrame) -> None:
    stale = with_stale_stretch(panel.with_columns(pl.lit(100.0).alias(BENCH_CLOSE)), "ALPHA", 900)
    defs = build_feature_defs(FeaturesConfig())  # the shipped defaults, every family on
    out = add_features(stale, defs)
    for d in defs:
        values = out.get_column(d.name)
        assert not values.is_infinite().any() and not values.is_nan().any(), d.name
