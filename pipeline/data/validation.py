"""The data contract every batch must meet before anything is written anywhere.

Rules are Polars expressions evaluated in one pass; the report names the source (a file, or
``request`` for the HTTP service), the rule, the column, how many rows break it and the first
few of them, located the way that source counts: CSV file lines, parquet row indexes, or items
of a request's list. Errors block the job; warnings (suspicious but possible data: a split that
was not adjusted, a long gap, stale data) are logged and kept in the report.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from pipeline.errors import DataError

MAX_ROWS_SHOWN = 5
# Bounds that keep every feature finite: ratios, squares and rolling sums of values in these
# ranges stay far below float64's 1.8e308, and the dates stay inside pandas' nanosecond range.
MIN_PRICE, MAX_PRICE, MAX_VOLUME = 1e-12, 1e15, 1e18
FIRST_DATE, LAST_DATE = dt.date(1800, 1, 1), dt.date(2199, 12, 31)
PRICES = ("open", "high", "low", "close")
log = logging.getLogger(__name__)

Locator = Callable[[int], str]
"""Renders a 0-based data row as the place a user looks for it ("line 3", "row 1", "bars[1]")."""


def csv_line(row: int) -> str:
    """The 1-based line of a CSV file whose header is line 1."""
    return f"line {row + 2}"


def row_index(row: int) -> str:
    """The 0-based row index of a table (parquet, a downloaded frame)."""
    return f"row {row}"


def list_item(name: str) -> Locator:
    """The index in a request's list, e.g. ``list_item("bars")(3) == "bars[3]"``."""
    return lambda row: f"{name}[{row}]"


@dataclass(frozen=True)
class ContractPolicy:
    """Thresholds and policies of the contract (from data.yaml)."""

    missing: Literal["error", "drop"] = "error"
    max_abs_log_return: float = 0.5
    max_gap_business_days: int = 5
    max_staleness_days: int | None = None
    today: dt.date | None = None


@dataclass(frozen=True)
class Violation:
    rule: str
    column: str
    count: int
    where: str
    severity: Literal["error", "warning"]

    def describe(self, path: Path | str) -> str:
        return f"{path}: column '{self.column}': {self.rule}: {self.count} row(s) at {self.where}"


@dataclass
class ContractReport:
    path: Path | str
    rows: int
    violations: list[Violation] = field(default_factory=list)

    @property
    def errors(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "error"]

    @property
    def warnings(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "warning"]

    def raise_for_errors(self) -> None:
        """Raise one DataError listing every broken rule."""
        if self.errors:
            raise DataError("\n".join(v.describe(self.path) for v in self.errors))

    def log_warnings(self) -> None:
        for v in self.warnings:
            log.warning("data contract: %s", v.describe(self.path))


def describe_rows(
    rows: pl.Series, values: pl.Series | None = None, locate: Locator = row_index
) -> str:
    """'line 3 ('abc'), line 7 ('x') ... (+N more)': the first rows, located by ``locate``."""
    shown = []
    for i, row in enumerate(rows.to_list()[:MAX_ROWS_SHOWN]):
        value = values[i] if values is not None and i < len(values) else None
        suffix = f" ({value!r})" if value is not None else ""
        shown.append(f"{locate(row)}{suffix}")
    more = f" (+{len(rows) - MAX_ROWS_SHOWN} more)" if len(rows) > MAX_ROWS_SHOWN else ""
    return ", ".join(shown) + more


def _price_rules(column: str) -> list[tuple[str, str, pl.Expr]]:
    ok = pl.col(column).is_finite() & (pl.col(column) > 0)
    # Only finite positive values are checked against the range, so each bad cell counts once.
    out_of_range = ok & ~pl.col(column).is_between(MIN_PRICE, MAX_PRICE)
    if column not in PRICES:  # an optional column (bench_close): null means "no quote that day"
        ok, out_of_range = ok | pl.col(column).is_null(), out_of_range.fill_null(False)
    return [
        (column, "prices must be finite and > 0", ~ok),
        (column, f"prices must be between {MIN_PRICE:g} and {MAX_PRICE:g}", out_of_range),
    ]


def _error_rules(columns: list[str]) -> list[tuple[str, str, pl.Expr]]:
    optional = [c for c in ("bench_close",) if c in columns]
    volume = pl.col("volume")
    return [
        *[rule for c in (*PRICES, *optional) for rule in _price_rules(c)],
        ("volume", "volume must be finite and >= 0", ~(volume.is_finite() & (volume >= 0))),
        ("volume", f"volume must be <= {MAX_VOLUME:g}", volume.is_finite() & (volume > MAX_VOLUME)),
        (
            "ticker",
            "ticker must not be empty",
            pl.col("ticker").is_null() | (pl.col("ticker").str.strip_chars() == ""),
        ),
        (
            "date",
            f"dates must be between {FIRST_DATE} and {LAST_DATE}",
            ~pl.col("date").is_between(FIRST_DATE, LAST_DATE),
        ),
        (
            "high",
            "high must be >= max(open, close)",
            pl.col("high") < pl.max_horizontal("open", "close"),
        ),
        (
            "low",
            "low must be <= min(open, close)",
            pl.col("low") > pl.min_horizontal("open", "close"),
        ),
        ("date", "duplicate (ticker, date)", pl.struct("ticker", "date").is_duplicated()),
        (
            "date",
            "dates must be strictly increasing per ticker",
            (pl.col("date") <= pl.col("date").shift(1)).over("ticker").fill_null(False),
        ),
    ]


def _warning_rules(policy: ContractPolicy) -> list[tuple[str, str, pl.Expr]]:
    logret = (pl.col("close") / pl.col("close").shift(1)).log().over("ticker")
    gap = pl.business_day_count(pl.col("date").shift(1), pl.col("date")).over("ticker")
    return [
        (
            "close",
            f"daily move beyond |log return| {policy.max_abs_log_return} (unadjusted split?)",
            (logret.abs() > policy.max_abs_log_return).fill_null(False),
        ),
        (
            "date",
            f"gap of more than {policy.max_gap_business_days} business days",
            (gap > policy.max_gap_business_days).fill_null(False),
        ),
    ]


def _stale(frame: pl.DataFrame, policy: ContractPolicy) -> list[Violation]:
    if policy.max_staleness_days is None or not frame.height:
        return []
    today = policy.today or dt.date.today()
    last = frame.group_by("ticker").agg(pl.col("date").max())
    stale = last.filter(
        (pl.lit(today) - pl.col("date")).dt.total_days() > policy.max_staleness_days
    )
    return [
        Violation(
            f"last date {date} is older than {policy.max_staleness_days} days",
            "date",
            1,
            f"ticker {ticker}",
            "warning",
        )
        for ticker, date in stale.iter_rows()
    ]


def check_contract(
    frame: pl.DataFrame,
    path: Path | str,
    policy: ContractPolicy | None = None,
    locate: Locator = row_index,
) -> ContractReport:
    """Evaluate every rule; ``frame`` has the canonical columns plus ``row`` (0-based data row).

    An optional ``bench_close`` column is held to the price rules where it is not null.
    ``locate`` renders rows in the report (``csv_line`` for CSV files). Returns the report;
    call ``raise_for_errors`` to block on errors.
    """
    policy = policy or ContractPolicy()
    report = ContractReport(path, frame.height)
    rules = [(c, r, e, "error") for c, r, e in _error_rules(frame.columns)]
    rules += [(c, r, e, "warning") for c, r, e in _warning_rules(policy)]
    flags = frame.select([e.alias(f"r{i}") for i, (_, _, e, _) in enumerate(rules)])
    for i, (column, rule, _, severity) in enumerate(rules):
        bad = frame.filter(flags[f"r{i}"])
        if bad.height:
            values = bad["date"].cast(pl.String) if column == "date" else None
            report.violations.append(
                Violation(
                    rule,
                    column,
                    bad.height,
                    describe_rows(bad["row"], values, locate),
                    severity,  # type: ignore[arg-type]
                )
            )
    report.violations += _stale(frame, policy)
    return report
