"""Fixtures shaped like the data users bring, not like the NVDA file we ship.

- ``business_day_panel``: tickers on a Monday-to-Friday calendar, US holidays included (what a
  non-US listing, a fund or ``pandas.bdate_range`` gives), while the benchmark (the shipped
  SPY) skips those holidays; one ticker lists mid-sample and one delists.
- ``with_stale_stretch``: a suspended stock: the same price for 25 days, volume 0.
- ``close_only``: the same rows with only ``ticker, date, close``.

Prices are seeded geometric random walks, so every fixture is the same on every machine.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

FIRST, LAST = dt.date(2012, 1, 2), dt.date(2021, 12, 31)
LISTS = dt.date(2015, 6, 1)  # "LATE" has no rows before this date
DELISTS = dt.date(2020, 3, 31)  # nor "GONE" after this one
STALE_DAYS = 25


def business_days(first: dt.date = FIRST, last: dt.date = LAST) -> pl.Series:
    """Every Monday to Friday, holidays included."""
    days = pl.date_range(first, last, "1d", eager=True)
    return days.filter(days.dt.weekday() <= 5).alias("date")


def _walk(dates: pl.Series, ticker: str, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = dates.len()
    close = 40.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.02, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.005, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0.0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0.0, 0.01, n))
    volume = rng.integers(100_000, 1_000_000, n).astype(float)
    return pl.DataFrame(
        {"ticker": ticker, "date": dates, "open": open_, "high": high, "low": low}
        | {"close": close, "volume": volume}
    )


def business_day_panel(tickers: tuple[str, ...] = ("ALPHA", "LATE", "GONE")) -> pl.DataFrame:
    """A panel on business days: the first ticker covers it all, the second lists at LISTS,
    the third delists at DELISTS."""
    days = business_days()
    spans = [days, days.filter(days >= LISTS), days.filter(days <= DELISTS)]
    frames = [
        _walk(span, t, seed) for seed, (t, span) in enumerate(zip(tickers, spans, strict=True))
    ]
    return pl.concat(frames)


def with_stale_stretch(frame: pl.DataFrame, ticker: str, start: int) -> pl.DataFrame:
    """``ticker`` suspended for STALE_DAYS rows from its row ``start``: OHLC frozen at that
    row's close, volume 0."""
    row = pl.int_range(pl.len()).over("ticker")
    stale = (pl.col("ticker") == ticker) & row.is_between(start, start + STALE_DAYS - 1)
    frozen = pl.col("close").filter(row == start).first().over("ticker")
    prices = [pl.when(stale).then(frozen).otherwise(pl.col(c)).alias(c) for c in _OHLC]
    volume = pl.when(stale).then(0.0).otherwise(pl.col("volume")).alias("volume")
    return frame.sort("ticker", "date").with_columns(*prices, volume)


_OHLC = ("open", "high", "low", "close")


def close_only(frame: pl.DataFrame) -> pl.DataFrame:
    """Only the columns a CRSP-style adjusted-close extract has."""
    keep = [c for c in ("ticker", "date", "close") if c in frame.columns]
    return frame.select(keep)
