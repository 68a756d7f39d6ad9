"""Tickers in files, file names, data.yaml and ``fetch --tickers`` follow the one ticker rule
(issue 21, item 9): ``nvda``, ``NVDA `` and ``NVDA`` are one ticker, ``NVDA\\x00`` none."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from support import price_csv

from pipeline.cli import main
from pipeline.data.readers import FileSource
from pipeline.errors import DataError
from pipeline.settings import DataConfig

PANEL_HEADER = "ticker,date,open,high,low,close,volume\n"
BAR = "10,11,9,10.5,100"
RULE = (
    "ticker must be 1-32 characters of A-Z, 0-9 and . - ^ = _ "
    "(case and surrounding spaces are ignored)"
)


def test_case_and_spaces_collapse_to_one_ticker(tmp_path: Path) -> None:
    lines = [f"nvda,2024-01-02,{BAR}", f"NVDA ,2024-01-03,{BAR}", f" NVDA,2024-01-04,{BAR}"]
    batch = FileSource(price_csv(tmp_path, lines, header=PANEL_HEADER)).load()
    assert batch.tickers == ("NVDA",)
    assert batch.frame["date"].cast(str).to_list() == ["2024-01-02", "2024-01-03", "2024-01-04"]
    # data.yaml's `tickers` pick rows whatever case either side writes.
    picked = FileSource(price_csv(tmp_path, lines, header=PANEL_HEADER), tickers=("Nvda",))
    assert picked.load().frame.height == 3


def test_rows_that_collapse_onto_one_date_are_the_duplicate_error(tmp_path: Path) -> None:
    lines = [f"NVDA,2024-01-02,{BAR}", f"nvda,2024-01-03,{BAR}", f"NVDA ,2024-01-03,{BAR}"]
    path = price_csv(tmp_path, lines, header=PANEL_HEADER)
    with pytest.raises(DataError) as err:
        FileSource(path).load()
    assert (
        f"{path}: column 'date': duplicate (ticker, date): 2 row(s) at line 3 ('2024-01-03'), "
        "line 4 ('2024-01-03')"
    ) in str(err.value)


@pytest.mark.parametrize(
    ("ticker", "shown"),
    [
        ("NVDA\x00", r"'NVDA\x00'"),
        ("\u202eNVDA", r"'\u202eNVDA'"),
        ("NV DA", "'NV DA'"),
        ("\u017fPY", r"'\u017fPY'"),  # long s: upper-cases to S, must not pass as SPY
        ("A" * 100, "'" + "A" * 40 + "'"),
    ],
)
def test_an_invalid_ticker_is_refused_naming_column_rule_and_line(
    tmp_path: Path, ticker: str, shown: str
) -> None:
    lines = [f"SPY,2024-01-02,{BAR}", f"{ticker},2024-01-02,{BAR}", f"SPY,2024-01-03,{BAR}"]
    path = price_csv(tmp_path, lines, header=PANEL_HEADER)
    with pytest.raises(DataError) as err:
        FileSource(path).load()
    assert str(err.value) == f"{path}: column 'ticker': {RULE}: 1 row(s) at line 3 ({shown})"


def test_an_invalid_ticker_in_parquet_is_located_by_row(tmp_path: Path) -> None:
    path = tmp_path / "panel.parquet"
    pl.DataFrame(
        {
            "ticker": ["SPY", "SPY", "bad\tticker"],
            "date": ["2024-01-02", "2024-01-03", "2024-01-02"],
            "open": [10.0] * 3,
            "high": [11.0] * 3,
            "low": [9.0] * 3,
            "close": [10.5] * 3,
            "volume": [100.0] * 3,
        }
    ).write_parquet(path)
    with pytest.raises(DataError) as err:
        FileSource(path).load()
    assert str(err.value) == f"{path}: column 'ticker': {RULE}: 1 row(s) at row 2 ('bad\\tticker')"


def test_file_stems_are_tickers_under_the_same_rule(tmp_path: Path) -> None:
    assert FileSource(
        price_csv(tmp_path, [f"2024-01-02,{BAR}"], name="brk-b.csv")
    ).load().tickers == ("BRK-B",)
    bad = price_csv(tmp_path, [f"2024-01-02,{BAR}"], name="my prices.csv")
    with pytest.raises(DataError, match=r"my prices\.csv: the file name is not a ticker"):
        FileSource(bad).load()


def test_a_ticker_pattern_finds_lower_case_files_and_names_rows_by_the_ticker(
    tmp_path: Path,
) -> None:
    price_csv(tmp_path, [f"2024-01-02,{BAR}"], name="nvda.csv")
    price_csv(tmp_path, [f"2024-01-03,{BAR}"], name="SPY.csv")
    source = FileSource(tmp_path / "{ticker}.csv", tickers=("nvda", "spy"))
    assert source.paths() == [tmp_path / "nvda.csv", tmp_path / "SPY.csv"]
    frame = source.load().frame
    assert frame.select("ticker", pl.col("date").cast(str)).rows() == [
        ("NVDA", "2024-01-02"),
        ("SPY", "2024-01-03"),
    ]
    # A folder per ticker: the rows get the pattern's ticker, not the file's stem.
    (tmp_path / "QQQ").mkdir()
    price_csv(tmp_path / "QQQ", [f"2024-01-02,{BAR}"], name="prices.csv")
    nested = FileSource(tmp_path / "{ticker}" / "prices.csv", tickers=("QQQ",)).load()
    assert nested.tickers == ("QQQ",)


def test_data_yaml_tickers_are_normalised_or_refused() -> None:
    assert DataConfig(tickers=("nvda", " spy ", "^gspc")).tickers == ("NVDA", "SPY", "^GSPC")
    with pytest.raises(ValidationError, match=r"invalid ticker 'NVDA\\x00'"):
        DataConfig(tickers=("NVDA\x00",))
    with pytest.raises(ValidationError, match=r"\['NVDA'\] listed more than once"):
        DataConfig(tickers=("nvda", "NVDA "))


def test_fetch_refuses_an_invalid_ticker_before_any_download(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["fetch", "--tickers", "NVDA,SP Y"])
    assert result.exit_code == 2
    assert "--tickers" in result.output and "invalid ticker 'SP Y'" in result.output
