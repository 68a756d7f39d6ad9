"""Price files as common tools write them (issue 21, item 13): newest-first exports, yfinance's
own ``to_csv``, ``;``/tab separated files with decimal commas. Each is read, or refused naming
the file, the column and the rows. Expected values are written out by hand or computed by
pandas/datetime from the frame the file was written from, never by the reader under test."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support import REPO, price_csv

from pipeline.data.readers import FileOptions, FileSource, read_file
from pipeline.errors import DataError

ROWS = [  # (date, open, high, low, close, volume), oldest first
    ("2024-01-02", 10.0, 11.0, 9.0, 10.5, 100.0),
    ("2024-01-03", 10.5, 12.0, 10.0, 11.0, 200.0),
    ("2024-01-04", 11.0, 11.5, 10.2, 10.8, 150.0),
    ("2024-01-05", 10.8, 11.9, 10.1, 11.5, 175.0),
]


def _lines(rows: list[tuple[str, float, float, float, float, float]], sep: str = ",") -> list[str]:
    return [sep.join(str(v) for v in row) for row in rows]


def _as_tuples(path: Path, **kwargs: object) -> list[tuple[object, ...]]:
    frame = FileSource(path, **kwargs).load().frame  # type: ignore[arg-type]
    return [
        (str(r["date"]), r["open"], r["high"], r["low"], r["close"], r["volume"])
        for r in frame.iter_rows(named=True)
    ]


def _newest_first_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "newest-first" in r.getMessage()]


def test_a_newest_first_file_is_read_oldest_first_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = price_csv(tmp_path, _lines(ROWS[::-1]))
    with caplog.at_level(logging.WARNING):
        assert _as_tuples(path) == ROWS
    (warning,) = _newest_first_warnings(caplog)
    assert str(path) in warning
    # `validate` prints the report's warnings: the reversal is one of them.
    frame, report = read_file(path)
    assert [v.rule for v in report.warnings][:1] == [
        "dates are newest-first (descending): read in ascending order"
    ]
    assert frame["date"].is_sorted()


def test_a_newest_first_panel_is_read_per_ticker(tmp_path: Path) -> None:
    # Each ticker newest-first, the tickers interleaved as a date-major export writes them.
    lines = [f"{t},{line}" for line in _lines(ROWS[::-1]) for t in ("BBB", "AAA")]
    path = price_csv(tmp_path, lines, header="ticker,date,open,high,low,close,volume\n")
    frame = FileSource(path).load().frame
    assert frame["ticker"].to_list() == ["AAA"] * 4 + ["BBB"] * 4
    assert frame["date"].cast(str).to_list() == [r[0] for r in ROWS] * 2


def test_a_newest_first_file_with_a_repeated_date_names_the_duplicate_lines(
    tmp_path: Path,
) -> None:
    rows = ROWS[::-1]
    path = price_csv(tmp_path, _lines([rows[0], rows[1], rows[1], rows[2]]))
    with pytest.raises(DataError) as err:
        FileSource(path).load()
    message = str(err.value)
    # Lines 3 and 4 hold 2024-01-04 twice (line 2 is the first data line).
    assert f"{path}: column 'date': duplicate (ticker, date): 2 row(s) at line" in message
    assert "line 3 ('2024-01-04')" in message and "line 4" in message


@pytest.mark.parametrize(
    ("order", "line"),
    [
        ([0, 2, 1, 3], "line 4 ('2024-01-03')"),  # shuffled
        ([3, 0, 1, 2], "line 3 ('2024-01-02')"),  # newest first, then oldest-first: not reversed
    ],
)
def test_shuffled_dates_are_refused_naming_the_first_line_out_of_order(
    tmp_path: Path, order: list[int], line: str
) -> None:
    path = price_csv(tmp_path, _lines([ROWS[i] for i in order]))
    with pytest.raises(DataError) as err:
        FileSource(path).load()
    assert str(err.value) == (
        f"{path}: column 'date': dates must be strictly increasing per ticker: 1 row(s) at {line}"
    )


def test_a_panel_with_one_ticker_each_way_is_refused(tmp_path: Path) -> None:
    # Newest-first is a property of the whole file: half-reversed is not an export convention.
    lines = [f"AAA,{x}" for x in _lines(ROWS)] + [f"BBB,{x}" for x in _lines(ROWS[::-1])]
    path = price_csv(tmp_path, lines, header="ticker,date,open,high,low,close,volume\n")
    with pytest.raises(DataError, match=r"strictly increasing per ticker: 3 row\(s\) at line 7"):
        FileSource(path).load()


def _yfinance_history(tz: str | None) -> pd.DataFrame:
    """A frame shaped as yfinance 1.x ``Ticker.history()`` returns it: a DatetimeIndex named
    Date at the exchange's local midnight, across a DST change, with one bar stamped 23:30."""
    stamps = ["1999-01-22 00:00", "1999-03-26 00:00", "1999-04-05 00:00", "1999-07-01 23:30"]
    index = pd.DatetimeIndex(pd.to_datetime(stamps), name="Date")
    if tz is not None:
        index = index.tz_localize(tz)
    return pd.DataFrame(
        {
            "Open": [1.0, 2.0, 3.0, 4.0],
            "High": [1.5, 2.5, 3.5, 4.5],
            "Low": [0.5, 1.5, 2.5, 3.5],
            "Close": [1.25, 2.25, 3.25, 4.25],
            "Volume": [1000, 2000, 3000, 4000],
            "Dividends": [0.0, 0.0, 0.01, 0.0],
            "Stock Splits": [0.0, 2.0, 0.0, 0.0],
        },
        index=index,
    )


@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Tokyo", None])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_yfinance_to_csv_and_to_parquet_are_read_with_the_shipped_mapping(
    tmp_path: Path, tz: str | None, suffix: str
) -> None:
    history = _yfinance_history(tz)
    path = tmp_path / f"nvda{suffix}"
    history.to_csv(path) if suffix == ".csv" else history.to_parquet(path)
    if suffix == ".csv" and tz == "America/New_York":  # the format, as pandas writes it
        lines = path.read_text().splitlines()
        assert lines[0] == "Date,Open,High,Low,Close,Volume,Dividends,Stock Splits"
        assert lines[1].startswith("1999-01-22 00:00:00-05:00,")
        assert lines[4].startswith("1999-07-01 23:30:00-04:00,")
    shipped = yaml.safe_load((REPO / "conf" / "base" / "data.yaml").read_text())["columns"]
    batch = FileSource(path, options=FileOptions(columns=shipped)).load()
    assert batch.tickers == ("NVDA",)
    # The exchange-local calendar date: pandas' own wall-clock date of each stamp.
    assert batch.frame["date"].to_list() == [ts.date() for ts in history.index]
    assert batch.frame["close"].to_list() == history["Close"].to_list()
    assert batch.frame["volume"].to_list() == [float(v) for v in history["Volume"]]


def test_a_bad_timestamp_is_refused_naming_file_column_and_line(tmp_path: Path) -> None:
    lines = [
        "1999-01-22 00:00:00-05:00,1,1.5,0.5,1.25,1000",
        "1999-01-25 24:00:00-05:00,1,1.5,0.5,1.25,1000",
    ]
    path = price_csv(tmp_path, lines, header="Date,Open,High,Low,Close,Volume\n")
    with pytest.raises(DataError) as err:
        FileSource(path).load()
    assert str(err.value) == (
        f"{path}: column 'date' has 1 unparseable value(s) at line 3 ('1999-01-25 24:00:00-05:00')"
    )


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_files_with_decimal_commas_are_read(tmp_path: Path, sep: str) -> None:
    header = sep.join(["Date", "Open", "High", "Low", "Close", "Volume"]) + "\n"
    lines = [sep.join(str(v).replace(".", ",") for v in row) for row in ROWS]
    lines[1] = lines[1].replace("200,0", "200")  # an integer among decimal commas
    path = price_csv(tmp_path, lines, header=header)
    assert _as_tuples(path) == ROWS


def test_a_semicolon_file_with_decimal_points_is_read(tmp_path: Path) -> None:
    path = price_csv(tmp_path, _lines(ROWS, ";"), header="date;open;high;low;close;volume\n")
    assert _as_tuples(path) == ROWS


def test_decimal_commas_mixed_with_dots_are_refused_naming_column_and_lines(
    tmp_path: Path,
) -> None:
    lines = [
        "2024-01-02;10;11;9;10,5;100",
        "2024-01-03;1.010,5;1.020;1.000;1.010;100",  # thousands dots: 1010.5 or 1.0105?
    ]
    path = price_csv(tmp_path, lines, header="date;open;high;low;close;volume\n")
    with pytest.raises(DataError) as err:
        FileSource(path).load()
    message = str(err.value)
    assert message.startswith(f"{path}: column 'close' mixes decimal commas and dots")
    assert "1 value(s) at line 3 ('1.010')" in message
    assert "no thousands separator" in message


def test_numbers_with_separators_name_the_fix(tmp_path: Path) -> None:
    path = price_csv(tmp_path, ['2024-01-02,10,11,9,"10,5",1.234.567'])
    with pytest.raises(DataError) as err:
        FileSource(path).load()
    fix = "; numbers need '.' as decimal separator and no thousands separator (e.g. 1234.5)"
    assert str(err.value) == (
        f"{path}: column 'close' has 1 unparseable value(s) at line 2 ('10,5'){fix}\n"
        f"{path}: column 'volume' has 1 unparseable value(s) at line 2 ('1.234.567'){fix}"
    )


def test_an_unknown_separator_is_refused_naming_the_fix(tmp_path: Path) -> None:
    path = price_csv(tmp_path, _lines(ROWS, "|"), header="date|open|high|low|close|volume\n")
    with pytest.raises(DataError) as err:
        FileSource(path).load()
    assert str(err.value).startswith(f"{path}: missing required column(s)")
    assert "separate its fields with ',', ';' or a tab" in str(err.value)


def test_plain_midnight_timestamps_are_dates(tmp_path: Path) -> None:
    lines = [f"{row[0]} 00:00:00,{','.join(str(v) for v in row[1:])}" for row in ROWS]
    path = price_csv(tmp_path, lines)
    got = FileSource(path).load().frame["date"].to_list()
    assert got == [dt.date.fromisoformat(r[0]) for r in ROWS]


def test_yfinance_download_csv_names_the_fix(tmp_path: Path) -> None:
    # yf.download(...).to_csv(): (Price, Ticker) column levels, then a 'Date' line.
    header = "Price,Close,High,Low,Open,Volume\nTicker,NVDA,NVDA,NVDA,NVDA,NVDA\nDate,,,,,\n"
    path = price_csv(tmp_path, ["2024-01-02,10.5,11,9,10,100"], header=header)
    with pytest.raises(DataError) as err:
        FileSource(path).load()
    assert str(err.value).startswith(f"{path}: missing required column(s) ['date']")
    assert "yfinance download()'s three header lines" in str(err.value)
