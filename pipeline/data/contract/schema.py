"""``PriceSchema``: the contract's structural rules as a pandera model on the Polars backend.

Each rule is one Polars expression in ``KEEPS`` (``pipeline.data.price_rules``, True where a
row keeps the rule), keyed by the rule's text, which is also the pandera check's ``error`` and
the text of the contract's messages. The model's checks select those expressions, and the
one-pass screen (``keeps_every_rule``) evaluates the same ones: each rule is written once.

Nulls: pandera's ``nullable=False`` counts NaN as null, so a NaN price would be reported twice
(missing, and not finite). Float columns are therefore ``nullable=True`` and their first rule
refuses null itself (``ignore_na=False``); the other rules let null pass so that each bad cell
is reported once. ``bench_close`` is optional and null there means "no quote that day".
open, high, low and volume are optional columns (close-only data): absent, they are not
checked, and high/low are compared with whichever of open and close the frame has.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from pipeline.data.price_rules import (
    DATE_RANGE,
    DUPLICATE,
    EMPTY_TICKER,
    FINITE_PRICE,
    FINITE_VOLUME,
    HIGH,
    INCREASING,
    KEEPS,
    LOW,
    OPTIONAL,
    PRICE_RANGE,
    VALID_TICKER,
    VOLUME_RANGE,
)
from pipeline.data.validation import PRICES


def _keeps(data: pa.PolarsData, rule: str) -> pl.LazyFrame:
    """A pandera check's output: rule ``rule`` evaluated on the checked column."""
    return data.lazyframe.select(KEEPS[rule](data.key))


class PriceSchema(pa.DataFrameModel):
    """Daily bars in the canonical long layout: one row per (ticker, date).

    Columns and types, finite positive prices within [1e-12, 1e15], volume in [0, 1e18],
    high >= max(open, close), low <= min(open, close), dates in 1800..2199, non-empty
    tickers that keep the ticker rule (``pipeline.data.tickers``, case and spaces ignored),
    unique (ticker, date) and strictly increasing dates per ticker (in frame order). Other
    columns are allowed (``strict=False``): pipelines carry a ``row`` number for messages.
    """

    ticker: str = pa.Field(nullable=True)  # null is reported as an empty ticker, once
    date: pl.Date = pa.Field()
    open: float | None = pa.Field(nullable=True)  # optional columns: close-only data
    high: float | None = pa.Field(nullable=True)
    low: float | None = pa.Field(nullable=True)
    close: float = pa.Field(nullable=True)
    volume: float | None = pa.Field(nullable=True)
    bench_close: float | None = pa.Field(nullable=True)

    class Config:
        strict = False

    @pa.check(*PRICES, error=FINITE_PRICE, ignore_na=False)
    @classmethod
    def finite_prices(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _keeps(data, FINITE_PRICE)

    @pa.check(*OPTIONAL, error=FINITE_PRICE)  # ignore_na: null is "no quote that day"
    @classmethod
    def finite_optional_prices(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _keeps(data, FINITE_PRICE)

    @pa.check(*PRICES, *OPTIONAL, error=PRICE_RANGE)
    @classmethod
    def price_range(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _keeps(data, PRICE_RANGE)

    @pa.check("volume", error=FINITE_VOLUME, ignore_na=False)
    @classmethod
    def finite_volume(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _keeps(data, FINITE_VOLUME)

    @pa.check("volume", error=VOLUME_RANGE)
    @classmethod
    def volume_range(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _keeps(data, VOLUME_RANGE)

    @pa.check("ticker", error=EMPTY_TICKER, ignore_na=False)
    @classmethod
    def ticker_not_empty(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _keeps(data, EMPTY_TICKER)

    @pa.check("ticker", error=VALID_TICKER)
    @classmethod
    def ticker_valid(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _keeps(data, VALID_TICKER)

    @pa.check("date", error=DATE_RANGE)
    @classmethod
    def date_range(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _keeps(data, DATE_RANGE)

    # The row-wise rules below are column checks that read other columns, not dataframe checks:
    # pandera keeps a column check's failure cases to one column, while a dataframe check
    # turns every failing row into a Python dict (slow on a badly broken 2.5M-row file), and
    # the column is the one the message names.
    @pa.check("high", error=HIGH)
    @classmethod
    def high_covers_open_close(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _keeps(data, HIGH)

    @pa.check("low", error=LOW)
    @classmethod
    def low_under_open_close(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _keeps(data, LOW)

    @pa.check("date", error=DUPLICATE)
    @classmethod
    def unique_ticker_date(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _keeps(data, DUPLICATE)

    @pa.check("date", error=INCREASING)
    @classmethod
    def increasing_dates(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _keeps(data, INCREASING)
