"""The price contract's error rules, each declared once, as Polars expressions (no pandera).

``COLUMNS`` declares the columns (type, required); ``RULES`` the row rules, each a name, the
column its messages name, its message, and an expression that is True where a row breaks it
(never null: each rule says itself what a null cell means, so nothing depends on a library's
null semantics). Everything reads these two: ``find_broken`` (files, ``POST /predict`` and
``stockpipe validate``, through ``check_contract``) and ``PriceSchema``, the pandera model in
``pipeline.data.contract``, which is built from them for notebooks and users' own checks.

Only ticker, date and close are required: open, high, low and volume may be absent (close-only
data), and high/low are compared with whichever of open and close the frame has.
``check_contract`` treats a column that is null on every row as absent.

This module is a leaf: it imports Polars and the ticker rule only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from pipeline.data.tickers import CONTRACT_RULE, invalid, normalised

# Bounds that keep every feature finite: ratios, squares and rolling sums of values in these
# ranges stay far below float64's 1.8e308, and the dates stay inside pandas' nanosecond range.
MIN_PRICE, MAX_PRICE, MAX_VOLUME = 1e-12, 1e15, 1e18
FIRST_DATE, LAST_DATE = dt.date(1800, 1, 1), dt.date(2199, 12, 31)
PRICES = ("open", "high", "low", "close")
# Columns a source may lack (close-only data): null on every row means absent, not missing.
OPTIONAL_BARS = ("open", "high", "low", "volume")

FINITE_PRICE = "prices must be finite and > 0"
PRICE_RANGE = f"prices must be between {MIN_PRICE:g} and {MAX_PRICE:g}"
FINITE_VOLUME = "volume must be finite and >= 0"
VOLUME_RANGE = f"volume must be <= {MAX_VOLUME:g}"
EMPTY_TICKER = "ticker must not be empty"
VALID_TICKER = CONTRACT_RULE  # written once, in pipeline.data.tickers
DATE_RANGE = f"dates must be between {FIRST_DATE} and {LAST_DATE}"
HIGH = "high must be >= max(open, close)"
LOW = "low must be <= min(open, close)"
DUPLICATE = "duplicate (ticker, date)"
INCREASING = "dates must be strictly increasing per ticker"
# pandera's words for its own checks, kept since they are the contract's messages too.
MISSING = "values must not be missing"
MISSING_COLUMN = "required column is missing"


def wrong_type(wanted: pl.DataType, got: pl.DataType) -> str:
    """The message for a column of another type (pandera's wording)."""
    return f"must be of type {wanted}, got {got}"


@dataclass(frozen=True)
class Column:
    """One column of the contract: its type, and whether a frame must have it."""

    name: str
    dtype: pl.DataType
    required: bool


COLUMNS: tuple[Column, ...] = (
    Column("ticker", pl.String(), True),
    Column("date", pl.Date(), True),
    *(Column(c, pl.Float64(), c == "close") for c in PRICES),
    Column("volume", pl.Float64(), False),
    Column("bench_close", pl.Float64(), False),  # null there means "no quote that day"
)


@dataclass(frozen=True)
class Rule:
    """One row rule: ``broken`` is True where a row breaks it, and never null.

    ``column`` is the column messages name; ``reads`` the other columns ``broken`` needs
    (the rule is skipped when one of them is missing or of another type).
    """

    name: str
    column: str
    message: str
    broken: pl.Expr
    reads: tuple[str, ...] = ()


def _finite_positive(column: str) -> pl.Expr:
    return pl.col(column).is_finite() & (pl.col(column) > 0)


def _price_rules(column: str) -> tuple[Rule, Rule]:
    """A price is finite and > 0 (null too, except in bench_close), then within the range;
    only finite positive prices are held to the range, so each bad cell is reported once."""
    ok = _finite_positive(column)
    in_range = pl.col(column).is_between(MIN_PRICE, MAX_PRICE)
    return (
        Rule(f"{column}_finite", column, FINITE_PRICE, ~ok.fill_null(column == "bench_close")),
        Rule(f"{column}_in_range", column, PRICE_RANGE, (ok & ~in_range).fill_null(False)),
    )


def _ticker_rules() -> tuple[Rule, Rule]:
    """Empty (or null) tickers break EMPTY_TICKER only: each bad cell is reported once."""
    ticker = pl.col("ticker")
    empty = ticker.is_null() | (ticker.str.strip_chars() == "")
    bad = (~empty & invalid(normalised(ticker))).fill_null(False)
    return (
        Rule("ticker_not_empty", "ticker", EMPTY_TICKER, empty.fill_null(True)),
        Rule("ticker_valid", "ticker", VALID_TICKER, bad),
    )


def _volume_rules() -> tuple[Rule, Rule]:
    """Volume is finite and >= 0 (null too), then at most MAX_VOLUME."""
    volume = pl.col("volume")
    ok = volume.is_finite() & (volume >= 0)
    too_big = volume.is_finite() & (volume > MAX_VOLUME)
    return (
        Rule("volume_finite", "volume", FINITE_VOLUME, ~ok.fill_null(False)),
        Rule("volume_in_range", "volume", VOLUME_RANGE, too_big.fill_null(False)),
    )


def _bar_rules() -> tuple[Rule, Rule]:
    """high/low against whichever of open and close the frame has (close-only data)."""
    high, low, open_close = pl.col("high"), pl.col("low"), pl.col("^(open|close)$")
    above = (high < pl.max_horizontal(open_close)).fill_null(False)
    below = (low > pl.min_horizontal(open_close)).fill_null(False)
    return (
        Rule("high_covers", "high", HIGH, above, ("close",)),
        Rule("low_under", "low", LOW, below, ("close",)),
    )


def _date_rules() -> tuple[Rule, ...]:
    """Dates in range, unique and strictly increasing per ticker (in frame order), present."""
    date = pl.col("date")
    outside = ~date.is_between(FIRST_DATE, LAST_DATE).fill_null(True)
    twice = pl.struct("ticker", date).is_duplicated()
    back = (date <= date.shift(1)).over("ticker").fill_null(False)
    return (
        Rule("date_in_range", "date", DATE_RANGE, outside),
        Rule("unique_ticker_date", "date", DUPLICATE, twice, ("ticker",)),
        Rule("increasing_dates", "date", INCREASING, back, ("ticker",)),
        Rule("date_present", "date", MISSING, date.is_null()),
    )


_DATE_RANGE, *_DATE_ORDER = _date_rules()
# In the order messages come out (the hand-written contract's, before pandera).
RULES: tuple[Rule, ...] = (
    *(rule for c in (*PRICES, "bench_close") for rule in _price_rules(c)),
    *_volume_rules(),
    *_ticker_rules(),
    _DATE_RANGE,
    *_bar_rules(),
    *_DATE_ORDER,
)
# DUPLICATE is implied by INCREASING and MISSING (dates present and strictly increasing per
# ticker hold no (ticker, date) twice), so it is evaluated only when one of them is broken:
# hashing 2.5M keys costs 0.16 s that a clean frame need not pay.
IMPLIED, IMPLIED_BY = "unique_ticker_date", {"increasing_dates", "date_present"}


@dataclass(frozen=True)
class Broken:
    """One broken rule: the column, the rule's text and the 0-based positions of its rows.

    ``rows`` is empty for a rule about the frame's schema (a missing column, a wrong type).
    """

    column: str
    rule: str
    rows: pl.Series


def _schema_problems(frame: pl.DataFrame) -> tuple[list[Broken], set[str]]:
    """Missing required columns, then columns of another type; and the columns fit to check."""
    none = pl.Series("rows", [], dtype=pl.UInt32)
    present = [c for c in COLUMNS if c.name in frame.columns]
    missing = [
        Broken(c.name, MISSING_COLUMN, none) for c in COLUMNS if c.required and c not in present
    ]
    typed = [c for c in present if frame.schema[c.name] != c.dtype]
    wrong = [Broken(c.name, wrong_type(c.dtype, frame.schema[c.name]), none) for c in typed]
    return missing + wrong, {c.name for c in present if c not in typed}


def _rows(frame: pl.DataFrame, rules: list[Rule]) -> dict[str, pl.Series]:
    """The positions of each rule's broken rows, all rules in one Polars query."""
    out = frame.select(r.broken.arg_true().implode().alias(r.name) for r in rules)
    return {r.name: out.get_column(r.name)[0] for r in rules}


def find_broken(frame: pl.DataFrame) -> list[Broken]:
    """Every contract rule ``frame`` breaks (``[]`` when it keeps them all): row rules in
    ``RULES`` order, then problems of the frame's schema. One Polars query, or two when
    dates repeat or are missing (to tell duplicates apart).
    """
    problems, fit = _schema_problems(frame)
    rules = [r for r in RULES if r.column in fit and fit.issuperset(r.reads)]
    found = _rows(frame, [r for r in rules if r.name != IMPLIED])
    if any(found[name].len() for name in IMPLIED_BY if name in found):
        found |= _rows(frame, [r for r in rules if r.name == IMPLIED])
    broken = [Broken(r.column, r.message, found[r.name]) for r in rules if r.name in found]
    return [b for b in broken if b.rows.len()] + problems
