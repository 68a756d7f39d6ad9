"""The data contract every batch must meet before anything is written anywhere.

Rules are Polars expressions evaluated in one pass; the report names the file, the rule, the
column, how many rows break it and the first few file lines. Errors block the job; warnings
(suspicious but possible data: a split that was not adjusted, a long gap, stale data) are
logged and kept in the report.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from pipeline.errors import DataError

MAX_ROWS_SHOWN = 5
log = logging.getLogger(__name__)


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


def describe_rows(rows: pl.Series, values: pl.Series | None = None) -> str:
    """'line 3 ('abc'), line 7 ('x') ... (+N more)' with 1-based file lines (header = line 1)."""
    lines = (rows + 2).to_list()
    shown = []
    for i, line in enumerate(lines[:MAX_ROWS_SHOWN]):
        suffix = f" ({values[i]!r})" if values is not None and i < len(values) else ""
        shown.append(f"line {line}{suffix}")
    more = f" (+{len(lines) - MAX_ROWS_SHOWN} more)" if len(lines) > MAX_ROWS_SHOWN else ""
    return ", ".join(shown) + more


def _error_rules() -> list[tuple[str, str, pl.Expr]]:
    prices = ("open", "high", "low", "close")
    return [
        *[
            (c, "prices must be finite and > 0", ~(pl.col(c).is_finite() & (pl.col(c) > 0)))
            for c in prices
        ],
        (
            "volume",
            "volume must be finite and >= 0",
            ~(pl.col("volume").is_finite() & (pl.col("volume") >= 0)),
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


def check_contract(
    frame: pl.DataFrame, path: Path | str, policy: ContractPolicy | None = None
) -> ContractReport:
    """Evaluate every rule; ``frame`` has the canonical columns plus ``row`` (0-based data row).

    Returns the report; call ``raise_for_errors`` to block on errors.
    """
    policy = policy or ContractPolicy()
    report = ContractReport(path, frame.height)
    rules = [(c, r, e, "error") for c, r, e in _error_rules()]
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
                    describe_rows(bad["row"], values),
                    severity,  # type: ignore[arg-type]
                )
            )
    if policy.max_staleness_days is not None and frame.height:
        today = policy.today or dt.date.today()
        last = frame.group_by("ticker").agg(pl.col("date").max())
        stale = last.filter(
            (pl.lit(today) - pl.col("date")).dt.total_days() > policy.max_staleness_days
        )
        for ticker, date in stale.iter_rows():
            report.violations.append(
                Violation(
                    f"last date {date} is older than {policy.max_staleness_days} days",
                    "date",
                    1,
                    f"ticker {ticker}",
                    "warning",
                )
            )
    return report
