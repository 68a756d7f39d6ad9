"""Parquet input: stored types are checked, and problems are located by row index, not line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.data.readers import FileOptions, FileSource, read_file
from pipeline.errors import DataError

GOOD: dict[str, Any] = {
    "date": [dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)],
    "open": [10.0, 10.5, 11.0],
    "high": [11.0, 12.0, 11.5],
    "low": [9.0, 10.0, 10.2],
    "close": [10.5, 11.0, 10.8],
    "volume": [100, 200, 150],
}


def _parquet(tmp_path: Path, name: str = "ACME.parquet", **columns: Any) -> Path:
    path = tmp_path / name
    pl.DataFrame({**GOOD, **columns}).write_parquet(path)
    return path


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"volume": [True, False, True]}, "column 'volume' is stored as Boolean, not as numbers"),
        ({"close": [True, True, True]}, "column 'close' is stored as Boolean, not as numbers"),
        ({"volume": GOOD["date"]}, "column 'volume' is stored as Date, not as numbers"),
        (
            {"date": [20240102, 20240103, 20240104]},
            "column 'date' is stored as Int64, not as dates",
        ),
        ({"date": [1.0, 2.0, 3.0]}, "column 'date' is stored as Float64, not as dates"),
    ],
)
def test_wrong_stored_types_are_refused_naming_file_column_and_type(
    tmp_path: Path, columns: dict[str, Any], message: str
) -> None:
    path = _parquet(tmp_path, **columns)
    with pytest.raises(DataError) as err:
        read_file(path)
    assert str(err.value).startswith(f"{path}: {message}")


def test_type_errors_name_the_header_and_are_reported_together(tmp_path: Path) -> None:
    frame = pl.DataFrame(GOOD).rename({"volume": "Trade_Volume", "close": "CLOSE"})
    path = tmp_path / "ACME.parquet"
    frame.with_columns(pl.col("Trade_Volume", "CLOSE") > 0).write_parquet(path)
    with pytest.raises(DataError) as err:
        FileSource(path, options=FileOptions(columns={"Trade_Volume": "volume"})).load()
    assert str(err.value).splitlines() == [
        f"{path}: column 'CLOSE' is stored as Boolean, not as numbers (or text holding numbers)",
        f"{path}: column 'volume' is stored as Boolean, not as numbers (or text holding numbers)",
    ]


def test_numeric_text_datetimes_and_decimals_are_still_read(tmp_path: Path) -> None:
    path = _parquet(
        tmp_path,
        date=[dt.datetime(2024, 1, d) for d in (2, 3, 4)],
        close=["10.5", "11", " 10.8 "],
        volume=pl.Series([100, 200, 150], dtype=pl.Decimal(10, 0)),
    )
    frame, _ = read_file(path)
    assert frame["close"].to_list() == [10.5, 11.0, 10.8]
    assert frame["volume"].to_list() == [100.0, 200.0, 150.0]
    assert frame.schema["date"] == pl.Date


def test_parquet_problems_name_rows_and_csv_problems_name_lines(tmp_path: Path) -> None:
    path = _parquet(tmp_path, high=[11.0, 9.0, 11.5], close=["10.5", "abc", "10.8"])
    with pytest.raises(DataError, match=r"unparseable value\(s\) at row 1 \('abc'\)"):
        read_file(path)
    path = _parquet(tmp_path, high=[11.0, 9.0, 11.5])
    with pytest.raises(DataError) as err:
        read_file(path)
    assert str(err.value) == (
        f"{path}: column 'high': high must be >= max(open, close): 1 row(s) at row 1"
    )
    csv = tmp_path / "ACME.csv"
    pl.read_parquet(path).write_csv(csv)
    with pytest.raises(DataError, match=r"1 row\(s\) at line 3$"):
        read_file(csv)


def test_a_missing_parquet_cell_is_reported_by_row(tmp_path: Path) -> None:
    path = _parquet(tmp_path, close=[10.5, None, 10.8])
    with pytest.raises(DataError, match=r"column 'close' has 1 missing value\(s\) at row 1$"):
        FileSource(path).load()
