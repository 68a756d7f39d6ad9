"""Price files the user brings (CSV or parquet), read into the canonical schema and validated.

Columns: date and close are required; open, high, low and volume are optional (a close-only
file, ``date,close`` or ``ticker,date,close``, is the usual adjusted-close panel); ticker is
optional too (else the file stem). An absent column is carried as null in every row (the
contract checks only the columns a file has; the features that need one are left out).
Tickers, from a column, a file name or a ``{ticker}`` pattern, follow the one ticker rule
(``pipeline.data.tickers``): ``nvda`` and ``NVDA `` are NVDA; an invalid one is a contract
error naming its rows. Files as common tools write them are read: a CSV's separator is
sniffed from its header (``,`` ``;`` or tab), a ``;`` or tab file may use decimal commas
(``10,5``), a date may be a timestamp (pandas' ``to_csv`` of yfinance's tz-aware index:
``1999-01-22 00:00:00-05:00`` is 1999-01-22, the date as written), and a newest-first file is
read oldest-first with a warning (shuffled dates are still refused: see ``_oldest_first``).
Headers are matched case-insensitively with spaces and underscores ignored, so ``Date`` and
``Close`` work too, and ``data.yaml: columns`` maps any other header (``{PRC: close}``). With
``adjustment: adjusted`` an ``Adj Close`` column, when present, replaces close and scales
open/high/low by the same factor (the usual back-adjustment); a file with ``Adj Close`` and no
close reads it as close (raw open/high/low cannot be scaled without the raw close: they are
left out, with a warning). ``raw`` ignores ``Adj Close``. A path may
hold ``{ticker}`` to read one file per ticker. Every problem is reported with the file, the
column and the rows at fault: CSV lines ("line 2" is the first data line) or parquet row indexes
("row 0" is the first row). Parquet columns keep their stored types, so a price or volume column
must be numeric (or text holding numbers) and a date column a date, datetime or text (a
tz-aware datetime gives its date in its own zone, not in UTC).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from pipeline.data.external import read_parquet
from pipeline.data.tickers import normalise_ticker, normalise_tickers, normalised
from pipeline.data.validation import (
    ContractPolicy,
    ContractReport,
    Locator,
    Violation,
    check_contract,
    csv_line,
    describe_rows,
    row_index,
)
from pipeline.domain import PRICE_COLUMNS, PriceBatch
from pipeline.errors import DataError
from pipeline.ordering import by_ticker_date, ordered, strictly_ordered, unique_keys

NUMERIC = ("open", "high", "low", "close", "volume")
REQUIRED = ("date", "close")  # open, high, low and volume may be absent (close-only files)
SEPARATORS = (",", ";", "\t")  # the first is the default
# A timestamp's date part, kept as written: `1999-01-22 00:00:00-05:00`, `...T00:00:00Z`.
TIMESTAMP = (
    r"^(\d{4}-\d{2}-\d{2})[ T](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?$"
)
DECIMAL_COMMA = r"^[+-]?\d*,\d+$"
NEWEST_FIRST = "dates are newest-first (descending): read in ascending order"
WANTED = ("date", *NUMERIC)  # every canonical column but the optional ticker
log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes: the data fingerprint logged with every model."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _separator(path: Path) -> str:
    """The header line's field separator: whichever of ``,`` ``;`` and tab it holds most
    (quoted names aside), ``,`` on a tie. European exports use ``;``, some tools tabs."""
    with path.open("rb") as handle:
        header = handle.readline(1 << 16).decode("utf-8", errors="replace")
    header = re.sub(r'"[^"]*"', "", header)
    counts = [header.count(sep) for sep in SEPARATORS]
    return SEPARATORS[counts.index(max(counts))]


def _read_raw(path: Path) -> tuple[pl.DataFrame, str]:
    """The file's cells (CSV: all text) and its field separator ("" for parquet)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            sep = _separator(path)
            # Read as text so that bad cells can be reported by row instead of failing inference.
            return pl.read_csv(path, infer_schema=False, separator=sep), sep
        if suffix in {".parquet", ".pq"}:
            # Polars panics (a BaseException, with a Rust backtrace) on some damaged files.
            return read_parquet(path, "data file", "export it again or check the copy"), ""
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


def _header_hint(raw: pl.DataFrame) -> str:
    """Why a file's header lacks columns, when a common cause shows: fields separated by
    something else than , ; or tab, or ``yf.download(...).to_csv()``'s three header lines."""
    first = raw.columns[0]
    if raw.width == 1 and re.search(r"[^A-Za-z0-9_ ]", first):
        return " (the header is one column: separate its fields with ',', ';' or a tab)"
    if first == "Price" and raw.height and raw.row(0)[0] == "Ticker":
        return (
            " (yfinance download()'s three header lines: save one ticker's bars with "
            "yf.Ticker(t).history().to_csv(), or drop the 'Ticker' level before to_csv())"
        )
    return ""


def _normalise_header(name: str) -> str:
    return name.strip().lower().replace(" ", "").replace("_", "")


@dataclass(frozen=True)
class FileOptions:
    """How to read user files: header mapping, adjustment and the contract's policy."""

    columns: Mapping[str, str] = field(default_factory=dict)
    adjustment: Literal["adjusted", "raw"] = "adjusted"
    policy: ContractPolicy = field(default_factory=ContractPolicy)


def _adj_close_only(lookup: dict[str, str], path: Path) -> dict[str, str]:
    """A file whose only close is ``Adj Close`` (adjustment: adjusted): it is the close. Its
    open/high/low are raw prices that cannot be scaled without the raw close, so they are left
    out (a warning names them) rather than mixed with adjusted closes."""
    adj = lookup.pop("adjclose")
    unscalable = [lookup.pop(c) for c in ("open", "high", "low") if c in lookup]
    if unscalable:
        log.warning(
            "%s: column(s) %s left out: without a raw close they cannot be adjusted like "
            "'%s' (the close read)",
            *(path, unscalable, adj),
        )
    return {**lookup, "close": adj}


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


def _adjustment_hint(lookup: dict[str, str], adjustment: str) -> str:
    """Why an ``Adj Close`` column did not give the close: ``adjustment: raw`` ignores it."""
    if adjustment == "raw" and "adjclose" in lookup and "close" not in lookup:
        return (
            f" ('{lookup['adjclose']}' is ignored under data.yaml adjustment: raw; set "
            "adjustment: adjusted, or map it with columns: {" + lookup["adjclose"] + ": close})"
        )
    return ""


def _stem_ticker(path: Path) -> str:
    """The ticker a file's name gives (``nvda.csv`` is NVDA), or a DataError saying why not."""
    try:
        return normalise_ticker(path.stem)
    except ValueError as exc:
        raise DataError(
            f"{path}: the file name is not a ticker ({exc}); rename the file or add a "
            "'ticker' column"
        ) from None


def _normalised_tickers(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its tickers normalised (``nvda `` is NVDA); invalid ones stay as written,
    for the contract's ticker rule to report by row. Each distinct ticker is normalised once:
    on 2.5M rows that is 0.02 s of CPU instead of 0.2 s."""
    values = frame.get_column("ticker").unique()
    fixed = values.to_frame().select(normalised(pl.col("ticker"))).get_column("ticker")
    changed = values.ne_missing(fixed)
    if not changed.any():
        return frame
    return frame.with_columns(
        pl.col("ticker").replace(values.filter(changed), fixed.filter(changed))
    )


def _canonical(
    raw: pl.DataFrame, path: Path, options: FileOptions, ticker: str | None = None
) -> pl.DataFrame:
    """The file's columns mapped, type-checked and adjusted into canonical names, as read;
    tickers normalised (a ``ticker`` column, else ``ticker``, else the file's name)."""
    unknown = [c for c in options.columns if c not in raw.columns]
    if unknown:
        raise DataError(
            f"{path}: data.yaml 'columns' maps {unknown}, not in the file's header {raw.columns}"
        )
    raw = raw.rename(dict(options.columns))
    lookup = {_normalise_header(c): c for c in raw.columns}
    _check_types(raw, lookup, path)
    if options.adjustment == "adjusted" and "adjclose" in lookup and "close" not in lookup:
        lookup = _adj_close_only(lookup, path)
    raw = _adjust(raw, lookup, options.adjustment)
    missing = [c for c in REQUIRED if c not in lookup]
    if missing:
        raise DataError(
            f"{path}: missing required column(s) {missing}; found {raw.columns}"
            + _header_hint(raw)
            + _adjustment_hint(lookup, options.adjustment)
        )
    if ticker is None and "ticker" in lookup:
        tickers = pl.col(lookup["ticker"]).cast(pl.String)
    else:
        tickers = pl.lit(ticker if ticker is not None else _stem_ticker(path))
    present = [c for c in WANTED if c in lookup]
    frame = raw.select(
        [pl.col(lookup[c]).alias(c) for c in present] + [tickers.alias("ticker")]
    ).with_row_index("row")
    frame = _normalised_tickers(frame)
    # Blank lines (all fields empty) are not data; everything else is checked below.
    frame = frame.filter(~pl.all_horizontal([pl.col(c).is_null() for c in present]))
    if frame.height == 0:
        raise DataError(f"{path}: file has a header but no rows")
    return frame


def _dates(frame: pl.DataFrame) -> pl.Expr:
    """Dates, null where a cell does not parse. A timestamp gives its date as written (its
    exchange-local date, before any UTC conversion): ``1999-01-22 00:00:00-05:00`` (how
    pandas writes yfinance's tz-aware index) is 1999-01-22, and so is ``... 23:30:00-05:00``."""
    column, kind = pl.col("date"), frame.schema["date"]
    if kind == pl.Datetime:
        # .dt.date() is the wall-clock date in the column's zone; a cast gives the UTC date.
        return column.dt.date()
    if kind == pl.Date:
        return column
    text = column.cast(pl.String).str.strip_chars()
    # Only a column with values longer than a date pays for the regex (~0.5 s on 2.5M rows).
    if (frame.select(text.str.len_bytes().max()).item() or 0) > len("2024-01-02"):
        text = text.str.replace(TIMESTAMP, "${1}")
    return text.str.to_date(strict=False)


def _typed(frame: pl.DataFrame) -> pl.DataFrame:
    """Dates and floats, with null where a cell does not parse (reported by the caller)."""
    return frame.with_columns(
        _dates(frame).alias("date"),
        *[
            pl.col(c).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False).alias(c)
            if frame.schema[c] == pl.String
            else pl.col(c).cast(pl.Float64, strict=False)
            for c in NUMERIC
            if c in frame.columns
        ],
    )


def _decimal_commas(frame: pl.DataFrame, path: Path, locate: Locator) -> pl.DataFrame:
    """Numbers written with a decimal comma (``1,5``, in a ``;`` or tab separated file) read
    as ``1.5``. A column that also holds a dot (``1.234,5`` or ``1.234``: a thousands
    separator?) is ambiguous, so it is refused, naming the rows, rather than guessed."""
    problems, converted = [], []
    for col in NUMERIC:
        if frame.schema.get(col) != pl.String:
            continue
        text = pl.col(col).str.strip_chars()
        commas = frame.select(text.str.contains(DECIMAL_COMMA).any()).item()
        if not commas:
            continue
        dotted = frame.filter(text.str.contains(".", literal=True))
        if dotted.height:
            where = describe_rows(dotted["row"], dotted[col], locate)
            problems.append(
                f"{path}: column '{col}' mixes decimal commas and dots in {dotted.height} "
                f"value(s) at {where}: write numbers with one decimal separator and no "
                "thousands separator (e.g. 1234,5 or 1234.5)"
            )
        converted.append(text.str.replace(",", ".", literal=True).alias(col))
    if problems:
        raise DataError("\n".join(problems))
    return frame.with_columns(converted)


def _unparseable_hint(col: str, values: pl.Series) -> str:
    """The fix for numbers written with separators: ``1,234.5``, ``1.234.567``, ``"10,5"``."""
    if col == "date" or not values.str.contains(r",|\..*\.").any():
        return ""
    return "; numbers need '.' as decimal separator and no thousands separator (e.g. 1234.5)"


def _parse(
    raw: pl.DataFrame,
    path: Path,
    options: FileOptions | None = None,
    separator: str = ",",
    ticker: str | None = None,
) -> pl.DataFrame:
    """Canonical, typed rows; every unparseable or missing cell reported at once."""
    options = options or FileOptions()
    frame, locate = _canonical(raw, path, options, ticker), _locator(path)
    if separator in (";", "\t"):  # "1,5" cannot be a decimal in a comma-separated file
        frame = _decimal_commas(frame, path, locate)
    parsed, problems = _typed(frame), []
    for col in [c for c in WANTED if c in frame.columns]:
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
                sample = frame.filter(pl.col("row").is_in(rows["row"].implode()))[col]
                problems.append(
                    f"{path}: column '{col}' has {rows.height} {kind} value(s) at "
                    f"{describe_rows(rows['row'], sample.cast(pl.String), locate)}"
                    + _unparseable_hint(col, sample.cast(pl.String))
                )
    if problems:
        raise DataError("\n".join(problems))
    # A column the file lacks is null on every row: the canonical frame (and the warehouse's
    # table) keeps one schema, and the contract skips a column that is null throughout.
    absent = [pl.lit(None, pl.Float64).alias(c) for c in NUMERIC if c not in parsed.columns]
    return parsed.with_columns(absent).select("row", *PRICE_COLUMNS)


def _oldest_first(frame: pl.DataFrame) -> tuple[pl.DataFrame, bool]:
    """``frame`` reversed when it is newest-first, and whether it was.

    Newest-first means every ticker's dates go down or stay (never up) in file order, and go
    down at least once: how Yahoo, Investing.com and Stooq exports often come. Reversing it
    keeps any repeated date next to its twin, so the contract still reports the duplicate at
    its lines. Shuffled dates (some up, some down) are not sorted: that is seldom an export
    convention and more often a damaged or badly concatenated file, which the contract refuses
    ("dates must be strictly increasing per ticker") naming the first line out of order.
    """
    if strictly_ordered(frame):  # the usual file, oldest first: one cheap pass
        return frame, False
    date, before = pl.col("date"), pl.col("date").shift(1)
    goes_up = frame.select((date > before).over("ticker").any()).item()
    # Not strictly ordered and never up: down (newest-first), or only repeated dates.
    if goes_up or not frame.select((date < before).over("ticker").any()).item():
        return frame, False
    return frame.reverse(), True


def read_file(
    path: Path,
    tickers: tuple[str, ...] | None = None,
    options: FileOptions | None = None,
    *,
    ticker: str | None = None,
) -> tuple[pl.DataFrame, ContractReport]:
    """Parse and check one file; raises DataError naming every broken rule.

    ``tickers`` keeps only those (normalised as the file's are); ``ticker`` gives every row
    that ticker (a ``{ticker}`` pattern's). A newest-first file is read oldest-first, with a
    warning in the report (see ``_oldest_first``).
    """
    options = options or FileOptions()
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    raw, separator = _read_raw(path)
    frame = _parse(raw, path, options, separator, ticker)
    if tickers:
        wanted = _wanted(tickers, path)
        frame = frame.filter(pl.col("ticker").is_in(wanted))
        if frame.height == 0:
            raise DataError(f"{path}: none of the tickers {wanted} found")
    frame, reversed_ = _oldest_first(frame)
    report = check_contract(frame, path, options.policy, _locator(path))
    if reversed_:
        report.violations.insert(0, Violation(NEWEST_FIRST, "date", frame.height, "", "warning"))
    report.raise_for_errors()
    report.log_warnings()
    return ordered(frame.drop("row")), report


def _wanted(tickers: tuple[str, ...], path: Path) -> list[str]:
    try:
        return list(normalise_tickers(tickers))
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None


class FileSource:
    """A PriceSource reading one CSV/parquet file, or one per ticker with a {ticker} pattern.

    A pattern's file is looked for with the ticker as given (normalised: upper case), then in
    lower case (``data/nvda.csv`` for NVDA); its rows get that ticker, whatever the file holds.
    """

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

    def _files(self) -> list[tuple[str | None, Path]]:
        """(ticker of a pattern's file or None, path) for every file this source reads."""
        if "{ticker}" not in str(self.path):
            return [(None, self.path)]
        if not self.tickers:
            raise DataError(f"{self.path}: a {{ticker}} pattern needs data.yaml 'tickers'")
        files: list[tuple[str | None, Path]] = []
        for ticker in _wanted(self.tickers, self.path):
            path = Path(str(self.path).replace("{ticker}", ticker))
            lower = Path(str(self.path).replace("{ticker}", ticker.lower()))
            files.append((ticker, lower if not path.is_file() and lower.is_file() else path))
        return files

    def paths(self) -> list[Path]:
        """The files this source reads."""
        return [path for _, path in self._files()]

    def load(self) -> PriceBatch:
        frames, hashes = [], []
        self.reports = []
        for ticker, path in self._files():
            tickers = self.tickers if ticker is None else None
            frame, report = read_file(path, tickers, self.options, ticker=ticker)
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
