"""The data contract every batch must meet before anything is written anywhere."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipeline.errors import DataError

MAX_ROWS_SHOWN = 5


def describe_rows(rows: pl.Series, values: pl.Series | None = None) -> str:
    """'line 3 ('abc'), line 7 ('x') ... (+N more)' with 1-based file lines (header = line 1)."""
    lines = (rows + 2).to_list()
    shown = []
    for i, line in enumerate(lines[:MAX_ROWS_SHOWN]):
        suffix = f" ({values[i]!r})" if values is not None and i < len(values) else ""
        shown.append(f"line {line}{suffix}")
    more = f" (+{len(lines) - MAX_ROWS_SHOWN} more)" if len(lines) > MAX_ROWS_SHOWN else ""
    return ", ".join(shown) + more


def check_contract(frame: pl.DataFrame, path: Path) -> None:
    """Raise DataError naming file, rule, count and first rows for the first broken rule.

    ``frame`` has the canonical columns plus ``row``, the 0-based data row in the file.
    """
    rules: list[tuple[str, str, pl.Expr]] = [
        (
            "close",
            "prices must be finite and > 0",
            ~pl.all_horizontal(
                [pl.col(c).is_finite() & (pl.col(c) > 0) for c in ("open", "high", "low", "close")]
            ),
        ),
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
    ]
    for column, rule, bad in rules:
        offending = frame.filter(bad)
        if offending.height:
            raise DataError(
                f"{path}: column '{column}': {rule}: {offending.height} row(s) at "
                f"{describe_rows(offending['row'])}"
            )
    dupes = frame.filter(pl.struct("ticker", "date").is_duplicated())
    if dupes.height:
        raise DataError(
            f"{path}: column 'date': duplicate (ticker, date): {dupes.height} row(s) at "
            f"{describe_rows(dupes['row'], dupes['date'].cast(pl.String))}"
        )
    unordered = frame.filter(
        (pl.col("date") <= pl.col("date").shift(1)).over("ticker").fill_null(False)
    )
    if unordered.height:
        raise DataError(
            f"{path}: column 'date': dates must be strictly increasing per ticker: "
            f"{unordered.height} row(s) at "
            f"{describe_rows(unordered['row'], unordered['date'].cast(pl.String))}"
        )
