"""The data contract every batch must meet before anything is written anywhere.

The errors are the contract's rules (``pipeline.data.rules``), evaluated in one Polars pass,
plus the checks a user's subclass of ``PriceSchema`` (``pipeline.data.contract``) adds; the
warnings (suspicious but
possible data: a split that was not adjusted, a long gap, stale data) depend on the policy's
thresholds and stay here as Polars expressions. The report names the source (a file, or
``request`` for the HTTP service), the rule, the column, how many rows break it and the first
few of them, located the way that source counts: CSV file lines, parquet row indexes, or items
of a request's list. Errors block the job; warnings are logged and kept in the report.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import polars as pl

from pipeline.data.rules import OPTIONAL_BARS, Broken, find_broken
from pipeline.data.tickers import CONTRACT_RULE
from pipeline.errors import DataError

if TYPE_CHECKING:
    from pandera.polars import DataFrameModel

MAX_ROWS_SHOWN = 5
SHOWN_CHARS = 40  # of a value shown in a message (a 10,000-character ticker)
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
        """``file: column 'c': rule: N row(s) at line 2, ...`` (no rows for a schema rule)."""
        head = f"{path}: column '{self.column}': {self.rule}"
        return f"{head}: {self.count} row(s) at {self.where}" if self.where else head


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
    rows: pl.Series,
    values: pl.Series | None = None,
    locate: Locator = row_index,
    total: int | None = None,
) -> str:
    """'line 3 ('abc'), line 7 ('x') ... (+N more)': the first rows, located by ``locate``.

    ``total`` is the number of rows at fault when ``rows`` holds only the first few of them.
    """
    shown = []
    for i, row in enumerate(rows.head(MAX_ROWS_SHOWN).to_list()):
        value = values[i] if values is not None and i < len(values) else None
        # !a (ascii): a NUL, a bidirectional override or a look-alike letter shows escaped.
        suffix = f" ({value!a})" if value is not None else ""
        shown.append(f"{locate(row)}{suffix}")
    total = len(rows) if total is None else total
    more = f" (+{total - MAX_ROWS_SHOWN} more)" if total > MAX_ROWS_SHOWN else ""
    return ", ".join(shown) + more


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


def _violation(
    frame: pl.DataFrame,
    broken: tuple[str, str, pl.Series],
    severity: Literal["error", "warning"],
    locate: Locator,
) -> Violation:
    """``(column, rule, positions in frame)`` as a violation, located as its source counts."""
    column, rule, positions = broken
    if positions.is_empty():  # a rule about the frame's schema (a missing column), not rows
        return Violation(rule, column, 0, "", severity)
    # Only the rows shown are gathered: a rule broken on every row of a big file stays cheap.
    # A date rule shows the dates too, the ticker rule the (escaped, cut) tickers at fault.
    value = "date" if column == "date" else "ticker" if rule == CONTRACT_RULE else None
    shown = frame.select("row", *([value] if value else []))[positions.head(MAX_ROWS_SHOWN)]
    values = shown[value].cast(pl.String).str.slice(0, SHOWN_CHARS) if value else None
    where = describe_rows(shown["row"], values, locate, total=positions.len())
    return Violation(rule, column, positions.len(), where, severity)


def _warnings(frame: pl.DataFrame, policy: ContractPolicy, locate: Locator) -> list[Violation]:
    rules = _warning_rules(policy)
    flags = frame.select([e.alias(f"r{i}") for i, (_, _, e) in enumerate(rules)])
    found = [(c, rule, flags[f"r{i}"].arg_true()) for i, (c, rule, _) in enumerate(rules)]
    return [_violation(frame, b, "warning", locate) for b in found if b[2].len()]


def _broken(frame: pl.DataFrame, schema: type[DataFrameModel] | None) -> list[Broken]:
    """The contract's broken rules (one Polars pass), then those of a user's own checks."""
    found = find_broken(frame)
    if schema is None:
        return found
    # Only a caller holding a schema imports pandera (~0.4 s), and it has already.
    from pipeline.data.contract import user_broken_rules

    return found + user_broken_rules(frame, schema, found)


def without_absent(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` without the optional columns that are null on every row (absent from the
    file or request: close-only data), so that the contract checks only what is there. A
    column with some values and some nulls stays, and its nulls break the rules."""
    if not frame.height:
        return frame
    optional = [c for c in OPTIONAL_BARS if c in frame.columns]
    nulls = frame.select(pl.col(optional).null_count()).row(0) if optional else ()
    return frame.drop(c for c, n in zip(optional, nulls, strict=True) if n == frame.height)


def check_contract(
    frame: pl.DataFrame,
    path: Path | str,
    policy: ContractPolicy | None = None,
    locate: Locator = row_index,
    schema: type[DataFrameModel] | None = None,
) -> ContractReport:
    """Evaluate every rule; ``frame`` has the canonical columns, and ``row`` (0-based data row).

    Errors are the contract's rules (``pipeline.data.rules``) and, for ``schema``, a subclass
    of ``PriceSchema`` (``pipeline.data.contract``), the checks it adds. An optional ``bench_close``
    column is held to the price rules where it is not null; open, high, low and volume are
    checked only when present and not null on every row (close-only data). ``locate``
    renders rows in the report (``csv_line`` for CSV files); without a ``row`` column rows
    are frame positions.
    Returns the report; call ``raise_for_errors`` to block on errors.
    """
    policy = policy or ContractPolicy()
    frame = without_absent(frame)
    if "row" not in frame.columns:
        frame = frame.with_row_index("row")
    report = ContractReport(path, frame.height)
    for found in _broken(frame, schema):
        broken = (found.column, found.rule, found.rows)
        report.violations.append(_violation(frame, broken, "error", locate))
    if any(v.count == 0 for v in report.errors):
        return report  # a column is missing or of the wrong type: the warnings cannot run
    report.violations += _warnings(frame, policy, locate)
    report.violations += _stale(frame, policy)
    return report
