"""Price files the user brings (CSV or parquet), read into the canonical schema and validated.

Columns: date, open, high, low, close, volume, and optionally ticker (else the file stem).
Headers are matched case-insensitively with spaces and underscores ignored, so ``Date`` and
``Close`` work too. Every problem is reported with the file, the column and the rows at fault.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from pipeline.data.validation import check_contract, describe_rows
from pipeline.domain import PRICE_COLUMNS, PriceBatch
from pipeline.errors import DataError

NUMERIC = ("open", "high", "low", "close", "volume")


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
            return pl.read_parquet(path)
    except pl.exceptions.NoDataError as exc:
        raise DataError(f"{path}: file is empty") from exc
    except (pl.exceptions.ComputeError, OSError) as exc:
        raise DataError(f"{path}: cannot read file: {exc}") from exc
    raise DataError(f"{path}: unsupported file type '{suffix}' (use .csv or .parquet)")


def _normalise_header(name: str) -> str:
    return name.strip().lower().replace(" ", "").replace("_", "")


def _parse(raw: pl.DataFrame, path: Path) -> pl.DataFrame:
    lookup = {_normalise_header(c): c for c in raw.columns}
    wanted = [c for c in PRICE_COLUMNS if c != "ticker"]
    missing = [c for c in wanted if c not in lookup]
    if missing:
        raise DataError(f"{path}: missing required column(s) {missing}; found {raw.columns}")
    frame = raw.select(
        [pl.col(lookup[c]).alias(c) for c in wanted]
        + (
            [pl.col(lookup["ticker"]).cast(pl.String).alias("ticker")]
            if "ticker" in lookup
            else [pl.lit(path.stem.upper()).alias("ticker")]
        )
    ).with_row_index("row")
    # Blank lines (all fields empty) are not data; everything else is checked below.
    frame = frame.filter(~pl.all_horizontal([pl.col(c).is_null() for c in wanted]))
    if frame.height == 0:
        raise DataError(f"{path}: file has a header but no rows")

    date_src = pl.col("date")
    date_expr = (
        date_src
        if frame.schema["date"] == pl.Date
        else date_src.cast(pl.Date, strict=False)
        if frame.schema["date"] == pl.Datetime
        else date_src.cast(pl.String).str.strip_chars().str.to_date(strict=False)
    )
    parsed = frame.with_columns(
        date_expr.alias("date"),
        *[
            pl.col(c).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False).alias(c)
            if frame.schema[c] == pl.String
            else pl.col(c).cast(pl.Float64, strict=False)
            for c in NUMERIC
        ],
    )
    for col in ("date", *NUMERIC):
        bad = parsed.filter(pl.col(col).is_null() & frame.get_column(col).is_not_null())
        blank = parsed.filter(frame.get_column(col).is_null())
        for kind, rows in (("unparseable", bad), ("missing", blank)):
            if rows.height:
                sample = frame.filter(pl.col("row").is_in(rows["row"].implode()))
                raise DataError(
                    f"{path}: column '{col}' has {rows.height} {kind} value(s) at "
                    f"{describe_rows(rows['row'], sample[col].cast(pl.String))}"
                )
    return parsed.select("row", *PRICE_COLUMNS)


class FileSource:
    """A PriceSource reading one CSV or parquet file."""

    def __init__(self, path: Path, tickers: tuple[str, ...] | None = None) -> None:
        self.path = path
        self.tickers = tickers

    def load(self) -> PriceBatch:
        if not self.path.is_file():
            raise DataError(f"{self.path}: data file not found")
        frame = _parse(_read_raw(self.path), self.path)
        if self.tickers:
            frame = frame.filter(pl.col("ticker").is_in(list(self.tickers)))
            if frame.height == 0:
                raise DataError(f"{self.path}: none of the tickers {list(self.tickers)} found")
        check_contract(frame, self.path)
        return PriceBatch(
            frame=frame.drop("row").sort("ticker", "date"),
            source=str(self.path),
            sha256=file_sha256(self.path),
        )
