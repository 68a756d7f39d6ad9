"""Price files the user brings (CSV or parquet), read into the canonical schema and validated.

Columns: date, open, high, low, close, volume, and optionally ticker (else the file stem).
Headers are matched case-insensitively with spaces and underscores ignored, so ``Date`` and
``Close`` work too, and ``data.yaml: columns`` maps any other header. With
``adjustment: adjusted`` an ``Adj Close`` column, when present, replaces close and scales
open/high/low by the same factor (the usual back-adjustment); ``raw`` ignores it. A path may
hold ``{ticker}`` to read one file per ticker. Every problem is reported with the file, the
column and the rows at fault: CSV lines ("line 2" is the first data line) or parquet row indexes
("row 0" is the first row). Parquet columns keep their stored types, so a price or volume column
must be numeric (or text holding numbers) and a date column a date, datetime or text.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from pipeline.data.external import read_parquet
from pipeline.data.validation import (
    ContractPolicy,
    ContractReport,
    Locator,
    check_contract,
    csv_line,
    describe_rows,
    row_index,
)
from pipeline.domain import PRICE_COLUMNS, PriceBatch
from pipeline.errors import DataError
from pipeline.ordering import by_ticker_date, ordered, unique_keys

NUMERIC = ("open", "high", "low", "close", "volume")
WANTED = ("date", *NUMERIC)  # every canonical column but the optional ticker
log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes: the data fingerprint logged with every model."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_raw(path: Path) -> pl.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # Read as text so that bad cells can be reported by row instead of failing inference.
            return pl.read_csv(path, infer_schema=False)
        if suffix in {".parquet", ".pq"}:
            # Polars panics (a BaseException, with a Rust backtrace) on some damaged files.
            return read_parquet(path, "data file", "export it again or check the copy")
    except pl.exceptions.NoDataError as exc:
        raise DataError(f"{path}: file is empty") from exc
    except (pl.exceptions.ComputeError, OSError) as exc:
        raise DataError(f"{path}: cannot read file: {exc}") from exc
    raise DataError(f"{path}: unsupported file type '{suffix}' (use .csv or .parquet)")


def _locator(path: Path) -> Locator:
    """CSV problems are reported by file line, parquet ones by row index."""
    return csv_line if path.suffix.lower() == ".csv" else row_index


def _check_types(raw: pl.DataFrame, lookup: dict[str, str], path: Path) -> None:
    """Refuse stored types that casting would silently turn into numbers or dates (bool -> 0/1)."""
    problems = []
    for name in ("date", *NUMERIC, "adjclose"):
        if name not in lookup:
            continue
        dtype = raw.schema[lookup[name]]
        if name == "date":
            ok, expected = dtype in (pl.Date, pl.Datetime), "dates (or text holding dates)"
        else:
            ok, expected = dtype.is_numeric(), "numbers (or text holding numbers)"
        if not (ok or dtype in (pl.String, pl.Null)):
            problems.append(
                f"{path}: column '{lookup[name]}' is stored as {dtype}, not as {expected}"
            )
    if problems:
        raise DataError("\n".join(problems))


def _normalise_header(name: str) -> str:
    return name.strip().lower().replace(" ", "").replace("_", "")


@dataclass(frozen=True)
class FileOptions:
    """How to read user files: header mapping, adjustment and the contract's policy."""

    columns: Mapping[str, str] = field(default_factory=dict)
    adjustment: Literal["adjusted", "raw"] = "adjusted"
    policy: ContractPolicy = field(default_factory=ContractPolicy)


def _adjust(raw: pl.DataFrame, lookup: dict[str, str], adjustment: str) -> pl.DataFrame:
    adj = lookup.get("adjclose")
    if adj is None or adjustment == "raw" or "close" not in lookup:
        return raw
    close = lookup["close"]
    num = [pl.col(c).cast(pl.Float64, strict=False) for c in (adj, close)]
    factor = num[0] / num[1]
    return raw.with_columns(
        *[
            (pl.col(lookup[c]).cast(pl.Float64, strict=False) * factor).alias(lookup[c])
            for c in ("open", "high", "low")
            if c in lookup
        ],
        num[0].alias(close),
    )


def _canonical(raw: pl.DataFrame, path: Path, options: FileOptions) -> pl.DataFrame:
    """The file's columns mapped, type-checked and adjusted into canonical names, as read."""
    unknown = [c for c in options.columns if c not in raw.columns]
    if unknown:
        raise DataError(
            f"{path}: data.yaml 'columns' maps {unknown}, not in the file's header {raw.columns}"
        )
    raw = raw.rename(dict(options.columns))
    lookup = {_normalise_header(c): c for c in raw.columns}
    _check_types(raw, lookup, path)
    raw = _adjust(raw, lookup, options.adjustment)
    missing = [c for c in WANTED if c not in lookup]
    if missing:
        raise DataError(f"{path}: missing required column(s) {missing}; found {raw.columns}")
    ticker = (
        pl.col(lookup["ticker"]).cast(pl.String)
        if "ticker" in lookup
        else pl.lit(path.stem.upper())
    )
    frame = raw.select(
        [pl.col(lookup[c]).alias(c) for c in WANTED] + [ticker.alias("ticker")]
    ).with_row_index("row")
    # Blank lines (all fields empty) are not data; everything else is checked below.
    frame = frame.filter(~pl.all_horizontal([pl.col(c).is_null() for c in WANTED]))
    if frame.height == 0:
        raise DataError(f"{path}: file has a header but no rows")
    return frame


def _typed(frame: pl.DataFrame) -> pl.DataFrame:
    """Dates and floats, with null where a cell does not parse (reported by the caller)."""
    date = pl.col("date")
    kind = frame.schema["date"]
    if kind == pl.Datetime:
        date = date.cast(pl.Date, strict=False)
    elif kind != pl.Date:
        date = date.cast(pl.String).str.strip_chars().str.to_date(strict=False)
    return frame.with_columns(
        date.alias("date"),
        *[
            pl.col(c).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False).alias(c)
            if frame.schema[c] == pl.String
            else pl.col(c).cast(pl.Float64, strict=False)
            for c in NUMERIC
        ],
    )


def _parse(raw: pl.DataFrame, path: Path, options: FileOptions | None = None) -> pl.DataFrame:
    """Canonical, typed rows; every unparseable or missing cell reported at once."""
    options = options or FileOptions()
    frame = _canonical(raw, path, options)
    parsed, problems, locate = _typed(frame), [], _locator(path)
    for col in ("date", *NUMERIC):
        bad = parsed.filter(pl.col(col).is_null() & frame.get_column(col).is_not_null())
        blank = parsed.filter(frame.get_column(col).is_null())
        if blank.height and options.policy.missing == "drop":
            where = describe_rows(blank["row"], locate=locate)
            log.warning(
                "%s: dropped %d row(s) with a missing '%s' (missing: drop) at %s",
                *(path, blank.height, col, where),
            )
            parsed = parsed.filter(~pl.col("row").is_in(blank["row"].implode()))
            frame = frame.filter(~pl.col("row").is_in(blank["row"].implode()))
            blank = blank.clear()
        for kind, rows in (("unparseable", bad), ("missing", blank)):
            if rows.height:
                sample = frame.filter(pl.col("row").is_in(rows["row"].implode()))
                problems.append(
                    f"{path}: column '{col}' has {rows.height} {kind} value(s) at "
                    f"{describe_rows(rows['row'], sample[col].cast(pl.String), locate)}"
                )
    if problems:
        raise DataError("\n".join(problems))
    return parsed.select("row", *PRICE_COLUMNS)


def read_file(
    path: Path, tickers: tuple[str, ...] | None = None, options: FileOptions | None = None
) -> tuple[pl.DataFrame, ContractReport]:
    """Parse and check one file; raises DataError naming every broken rule."""
    options = options or FileOptions()
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    frame = _parse(_read_raw(path), path, options)
    if tickers:
        frame = frame.filter(pl.col("ticker").is_in(list(tickers)))
        if frame.height == 0:
            raise DataError(f"{path}: none of the tickers {list(tickers)} found")
    report = check_contract(frame, path, options.policy, _locator(path))
    report.raise_for_errors()
    report.log_warnings()
    return ordered(frame.drop("row")), report


class FileSource:
    """A PriceSource reading one CSV/parquet file, or one per ticker with a {ticker} pattern."""

    def __init__(
        self,
        path: Path,
        tickers: tuple[str, ...] | None = None,
        options: FileOptions | None = None,
    ) -> None:
        self.path = path
        self.tickers = tickers
        self.options = options or FileOptions()
        self.reports: list[ContractReport] = []

    def paths(self) -> list[Path]:
        """The files this source reads."""
        if "{ticker}" not in str(self.path):
            return [self.path]
        if not self.tickers:
            raise DataError(f"{self.path}: a {{ticker}} pattern needs data.yaml 'tickers'")
        return [Path(str(self.path).replace("{ticker}", t)) for t in self.tickers]

    def load(self) -> PriceBatch:
        pattern = "{ticker}" in str(self.path)
        frames, hashes = [], []
        self.reports = []
        for path in self.paths():
            frame, report = read_file(path, None if pattern else self.tickers, self.options)
            if pattern:
                frame = frame.with_columns(pl.lit(path.stem.upper()).alias("ticker"))
            frames.append(frame)
            self.reports.append(report)
            hashes.append(file_sha256(path))
        # One file is sorted and checked for duplicates already: only several can overlap.
        frame = frames[0] if len(frames) == 1 else by_ticker_date(pl.concat(frames))
        if not unique_keys(frame):
            raise DataError(f"{self.path}: the files overlap: duplicate (ticker, date) rows")
        digest = (
            hashes[0] if len(hashes) == 1 else hashlib.sha256("".join(hashes).encode()).hexdigest()
        )
        return PriceBatch(frame=frame, source=str(self.path), sha256=digest)
