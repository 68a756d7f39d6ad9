"""File ingestion: canonical schema, and bad input rejected with file, column and rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from support import CSV_HEADER, SAMPLE, price_csv

from pipeline.data.readers import FileSource
from pipeline.errors import DataError

GOOD = [
    "2024-01-02,10,11,9,10.5,100",
    "2024-01-03,10.5,12,10,11,200",
    "2024-01-04,11,11.5,10.2,10.8,150",
]


def test_shipped_nvda_loads_as_canonical_frame() -> None:
    batch = FileSource(SAMPLE / "NVDA.csv").load()
    assert batch.frame.columns == ["ticker", "date", "open", "high", "low", "close", "volume"]
    assert batch.frame.schema["date"] == pl.Date
    assert batch.frame.height == 6962
    assert batch.tickers == ("NVDA",)
    assert len(batch.sha256) == 64


def test_ticker_from_stem_or_column_and_header_variants(tmp_path: Path) -> None:
    path = price_csv(tmp_path, GOOD, header="Date,Open,High,Low,Close,Volume\n", name="acme.csv")
    assert FileSource(path).load().tickers == ("ACME",)
    panel = price_csv(
        tmp_path,
        [f"{t},{row}" for t in ("AAA", "BBB") for row in GOOD],
        header="ticker," + CSV_HEADER,
        name="panel.csv",
    )
    batch = FileSource(panel).load()
    assert batch.tickers == ("AAA", "BBB")
    assert FileSource(panel, tickers=("BBB",)).load().frame.height == 3


def test_parquet_round_trip(tmp_path: Path) -> None:
    frame = FileSource(SAMPLE / "SPY.csv").load().frame
    path = tmp_path / "spy.parquet"
    frame.write_parquet(path)
    again = FileSource(path).load()
    assert again.frame.equals(frame)


@pytest.mark.parametrize(
    ("lines", "header", "pattern"),
    [
        (
            ["2024-01-02,10,11,9,100"],
            "date,open,high,low,volume\n",
            r"missing required column\(s\) \['close'\]",
        ),
        (
            ["2024-01-02,10,11,9,10.5,100", "2024-13-45,10,11,9,10.5,100"],
            CSV_HEADER,
            r"column 'date' has 1 unparseable value\(s\) at line 3 \('2024-13-45'\)",
        ),
        (
            ["2024-01-02,10,11,9,abc,100"],
            CSV_HEADER,
            r"column 'close' has 1 unparseable value\(s\) at line 2 \('abc'\)",
        ),
        (
            ["2024-01-02,10,11,9,,100"],
            CSV_HEADER,
            r"column 'close' has 1 missing value\(s\) at line 2",
        ),
        ([], CSV_HEADER, "header but no rows"),
        (
            ["2024-01-02,10,11,9,-1,100"],
            CSV_HEADER,
            r"prices must be finite and > 0: 1 row\(s\) at line 2",
        ),
        (["2024-01-02,10,11,9,10.5,-5"], CSV_HEADER, "volume must be finite and >= 0"),
        (["2024-01-02,10,9,8,10.5,100"], CSV_HEADER, r"high must be >= max\(open, close\)"),
        (["2024-01-02,10,11,10.6,10.5,100"], CSV_HEADER, r"low must be <= min\(open, close\)"),
        ([GOOD[0], GOOD[0]], CSV_HEADER, r"duplicate \(ticker, date\): 2 row\(s\) at line 2"),
        # Shuffled, not newest-first (a reversed file is read: test_file_formats.py).
        (
            [GOOD[0], GOOD[2], GOOD[1]],
            CSV_HEADER,
            r"strictly increasing per ticker: 1 row\(s\) at line 4",
        ),
    ],
)
def test_bad_input_names_file_column_and_rows(
    tmp_path: Path, lines: list[str], header: str, pattern: str
) -> None:
    path = price_csv(tmp_path, lines, header=header)
    with pytest.raises(DataError, match=pattern) as err:
        FileSource(path).load()
    assert str(path) in str(err.value)


def test_empty_missing_and_unsupported_files(tmp_path: Path) -> None:
    empty = tmp_path / "EMPTY.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"EMPTY\.csv: file is empty"):
        FileSource(empty).load()
    with pytest.raises(DataError, match="data file not found"):
        FileSource(tmp_path / "nope.csv").load()
    odd = tmp_path / "prices.xlsx"
    odd.write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        FileSource(odd).load()


def test_many_bad_rows_are_summarised(tmp_path: Path) -> None:
    lines = [f"2024-01-{d:02d},10,11,9,oops,100" for d in range(1, 11)]
    with pytest.raises(DataError, match=r"10 unparseable value\(s\) at line 2 .*\(\+5 more\)"):
        FileSource(price_csv(tmp_path, lines)).load()
