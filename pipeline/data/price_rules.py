"""The price contract's rules as Polars expressions, and a one-pass screen; no pandera here.

Each rule is one expression in ``KEEPS`` (True where a row keeps the rule), keyed by the rule's
text, which is also the pandera check's ``error`` in ``PriceSchema``
(``pipeline.data.contract.schema``) and the text of the contract's messages: each rule is
written once. ``COLUMNS`` declares, per column, what ``PriceSchema`` declares (type, whether
required, whether null is allowed, which rules); a unit test holds the two equal.

Only ticker, date and close are required: open, high, low and volume may be absent (close-only
data), and a rule reads only the columns that are there (high >= close when there is no open).
``check_contract`` treats a column that is null on every row as absent.

``keeps_every_rule`` evaluates all of it in one Polars query. pandera is only imported and run
when that finds something, to report every broken rule: importing it costs ~0.4 s, which a
clean file (or a clean request) should not pay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from pipeline.data.tickers import CONTRACT_RULE, invalid, normalised
from pipeline.data.validation import (
    FIRST_DATE,
    LAST_DATE,
    MAX_PRICE,
    MAX_VOLUME,
    MIN_PRICE,
)

FINITE_PRICE = "prices must be finite and > 0"
PRICE_RANGE = f"prices must be between {MIN_PRICE:g} and {MAX_PRICE:g}"
FINITE_VOLUME = "volume must be finite and >= 0"
VOLUME_RANGE = f"volume must be <= {MAX_VOLUME:g}"
EMPTY_TICKER = "ticker must not be empty"
VALID_TICKER = CONTRACT_RULE  # written once, in pipeline.data.tickers
DATE_RANGE = f"dates must be between {FIRST_DATE} and {LAST_DATE}"
HIGH = "high must be >= max(open, close)"
LOW = "low must be <= min(open, close)"
# The columns high and low are compared with, whichever of them the frame has.
OPEN_CLOSE = pl.col("^(open|close)$")
DUPLICATE = "duplicate (ticker, date)"
INCREASING = "dates must be strictly increasing per ticker"
OPTIONAL = ("bench_close",)


def _finite_positive(column: str) -> pl.Expr:
    return pl.col(column).is_finite() & (pl.col(column) > 0)


def _volume_in_range(column: str) -> pl.Expr:
    return ~(pl.col(column).is_finite() & (pl.col(column) > MAX_VOLUME))


def _price_in_range(column: str) -> pl.Expr:
    # Only finite positive prices are held to the range: each bad cell is reported once.
    return ~(_finite_positive(column) & ~pl.col(column).is_between(MIN_PRICE, MAX_PRICE))


def _ticker_not_empty(column: str) -> pl.Expr:
    return ~(pl.col(column).is_null() | (pl.col(column).str.strip_chars() == ""))


def _ticker_valid(column: str) -> pl.Expr:
    # Empty and null tickers break EMPTY_TICKER only: each bad cell is reported once.
    return ~_ticker_not_empty(column) | ~invalid(normalised(pl.col(column)))


def _dates_increase(column: str) -> pl.Expr:
    later = (pl.col(column) <= pl.col(column).shift(1)).over("ticker").fill_null(False)
    return ~later


KEEPS: dict[str, Callable[[str], pl.Expr]] = {
    FINITE_PRICE: _finite_positive,
    PRICE_RANGE: _price_in_range,
    FINITE_VOLUME: lambda c: pl.col(c).is_finite() & (pl.col(c) >= 0),
    VOLUME_RANGE: _volume_in_range,
    EMPTY_TICKER: _ticker_not_empty,
    VALID_TICKER: _ticker_valid,
    DATE_RANGE: lambda c: pl.col(c).is_between(FIRST_DATE, LAST_DATE),
    HIGH: lambda c: ~(pl.col(c) < pl.max_horizontal(OPEN_CLOSE)),
    LOW: lambda c: ~(pl.col(c) > pl.min_horizontal(OPEN_CLOSE)),
    DUPLICATE: lambda c: ~pl.struct("ticker", c).is_duplicated(),
    INCREASING: _dates_increase,
}
"""Rule text -> the expression of a column that is True where a row keeps the rule."""


@dataclass(frozen=True)
class ColumnRules:
    """One column as ``PriceSchema`` declares it; ``rules`` are (rule text, ignore_na)."""

    name: str
    dtype: pl.DataType
    required: bool
    nullable: bool
    rules: tuple[tuple[str, bool], ...]


def _price(name: str, *extra: str, required: bool = False) -> ColumnRules:
    rules = ((FINITE_PRICE, False), (PRICE_RANGE, True), *((r, True) for r in extra))
    return ColumnRules(name, pl.Float64(), required, True, rules)


COLUMNS: tuple[ColumnRules, ...] = (
    ColumnRules("ticker", pl.String(), True, True, ((EMPTY_TICKER, False), (VALID_TICKER, True))),
    ColumnRules(
        "date", pl.Date(), True, False, ((DATE_RANGE, True), (DUPLICATE, True), (INCREASING, True))
    ),
    _price("open"),
    _price("high", HIGH),
    _price("low", LOW),
    _price("close", required=True),
    ColumnRules(
        "volume", pl.Float64(), False, True, ((FINITE_VOLUME, False), (VOLUME_RANGE, True))
    ),
    *(
        ColumnRules(c, pl.Float64(), False, True, ((FINITE_PRICE, True), (PRICE_RANGE, True)))
        for c in OPTIONAL
    ),
)


def _tests(frame: pl.DataFrame) -> list[pl.Expr] | None:
    """One expression per rule, as pandera would judge it; None if a column is missing or of
    another type (pandera names what it wanted)."""
    tests = []
    for column in COLUMNS:
        if column.name not in frame.columns:
            if column.required:
                return None
            continue
        if frame.schema[column.name] != column.dtype:
            return None
        if not column.nullable:  # pandera counts NaN as null in float columns
            missing = pl.col(column.name).is_null()
            if column.dtype.is_float():
                missing = missing | pl.col(column.name).is_nan()
            tests.append(~missing)
        for rule, ignore_na in column.rules:
            if rule == DUPLICATE:
                # Implied by INCREASING (dates strictly increase per ticker, so no (ticker,
                # date) twice); hashing 2.5M keys cost 0.16 s.
                continue
            # pandera's ignore_na: a null outcome passes; otherwise it fails.
            tests.append(KEEPS[rule](column.name).fill_null(ignore_na))
    return tests


def keeps_every_rule(frame: pl.DataFrame) -> bool:
    """True if ``frame`` keeps every rule of ``PriceSchema`` (one Polars query, no pandera)."""
    tests = _tests(frame)
    if tests is None:
        return False
    return all(frame.select(t.all().alias(f"t{i}") for i, t in enumerate(tests)).row(0))
