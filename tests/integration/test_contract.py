"""The data contract: every rule, every error in one report, warnings, and nothing written."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result
from support import price_csv

from pipeline.cli import main
from pipeline.data.readers import FileOptions, read_file
from pipeline.data.validation import ContractPolicy
from pipeline.errors import DataError

OK1, OK2, OK3 = (
    "2024-01-02,10,11,9,10.5,100",
    "2024-01-03,10.5,12,10,11,200",
    "2024-01-04,11,12,10,11,50",
)
# One file breaking five rules at once; the report must name every one of them.
BAD_LINES = [
    "2024-01-02,10,11,9,-1,100",  # line 2: price <= 0 (and so low > min(open, close))
    "2024-01-03,10,11,9,10,-5",  # line 3: negative volume
    "2024-01-04,10,9,8,10.5,100",  # line 4: high < max(open, close)
    "2024-01-04,10,11,9,10.5,100",  # line 5: duplicate date (not increasing either)
]
BAD_RULES = [
    "column 'close': prices must be finite and > 0: 1 row(s) at line 2",
    "column 'volume': volume must be finite and >= 0: 1 row(s) at line 3",
    "column 'high': high must be >= max(open, close): 1 row(s) at line 4",
    "column 'low': low must be <= min(open, close): 1 row(s) at line 2",
    "column 'date': duplicate (ticker, date): 2 row(s) at line 4 ('2024-01-04'), line 5",
    "column 'date': dates must be strictly increasing per ticker: 1 row(s) at line 5",
]


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    ("lines", "rule"),
    [
        ([OK1, "2024-01-03,10,11,9,0,100"], "prices must be finite and > 0: 1 row(s) at line 3"),
        ([OK1, "2024-01-03,10,inf,9,10,100"], "prices must be finite and > 0: 1 row(s) at line 3"),
        ([OK1, "2024-01-03,10,11,9,10,-1"], "volume must be finite and >= 0: 1 row(s) at line 3"),
        (
            [OK1, "2024-01-03,10,10.4,9,10.5,1"],
            "high must be >= max(open, close): 1 row(s) at line 3",
        ),
        (
            [OK1, "2024-01-03,10,11,10.2,10.1,1"],
            "low must be <= min(open, close): 1 row(s) at line 3",
        ),
        ([OK1, OK1], "duplicate (ticker, date): 2 row(s) at line 2 ('2024-01-02'), line 3"),
        ([OK1, OK3, OK2], "strictly increasing per ticker: 1 row(s) at line 4 ('2024-01-03')"),
        ([OK1, "2024-01-03,10,11,9,,100"], "column 'close' has 1 missing value(s) at line 3"),
        (["2024-02-30,10,11,9,10,1"], "column 'date' has 1 unparseable value(s) at line 2"),
        (
            [OK1, "2024-01-03,10,11,9,1o,1"],
            "column 'close' has 1 unparseable value(s) at line 3 ('1o')",
        ),
    ],
)
def test_each_rule_is_an_error_naming_file_rule_and_lines(
    tmp_path: Path, lines: list[str], rule: str
) -> None:
    path = price_csv(tmp_path, lines)
    with pytest.raises(DataError) as err:
        read_file(path)
    assert rule in str(err.value)
    assert str(err.value).startswith(str(path))


def test_missing_value_policy_drop_keeps_the_other_rows(tmp_path: Path) -> None:
    path = price_csv(tmp_path, [OK1, "2024-01-03,10,11,9,,100", OK3])
    frame, report = read_file(path, options=FileOptions(policy=ContractPolicy(missing="drop")))
    assert frame["date"].cast(str).to_list() == ["2024-01-02", "2024-01-04"]
    assert report.errors == [] and report.rows == 2


def test_missing_column_and_empty_files(tmp_path: Path) -> None:
    no_close = price_csv(tmp_path, ["2024-01-02,10,11,9,5"], header="date,open,high,low,volume\n")
    with pytest.raises(DataError, match=r"missing required column\(s\) \['close'\]"):
        read_file(no_close)
    empty = tmp_path / "EMPTY.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"EMPTY\.csv: file is empty"):
        read_file(empty)
    with pytest.raises(DataError, match="header but no rows"):
        read_file(price_csv(tmp_path, [], name="HEAD.csv"))


def test_column_mapping_reads_timestamp_and_vol_headers(tmp_path: Path) -> None:
    header = "Timestamp,Open,High,Low,Close,Vol\n"
    path = price_csv(tmp_path, [OK1, OK2], header=header)
    with pytest.raises(DataError, match=r"missing required column\(s\) \['date'\]"):
        read_file(path)
    options = FileOptions(columns={"Timestamp": "date", "Vol": "volume"})
    frame, _ = read_file(path, options=options)
    assert frame.columns == ["ticker", "date", "open", "high", "low", "close", "volume"]
    assert frame["volume"].to_list() == [100.0, 200.0]
    with pytest.raises(DataError, match=r"maps \['Stamp'\], not in the file's header"):
        read_file(path, options=FileOptions(columns={"Stamp": "date"}))


def test_adj_close_scales_ohlc_when_adjusted_and_is_ignored_when_raw(tmp_path: Path) -> None:
    header = "Date,Open,High,Low,Close,Adj Close,Volume\n"
    path = price_csv(
        tmp_path, ["2024-01-02,10,12,8,10,5,100", "2024-01-03,20,24,16,20,15,100"], header
    )
    adjusted, _ = read_file(path, options=FileOptions(adjustment="adjusted"))
    assert adjusted.select("open", "high", "low", "close").rows() == [
        (5.0, 6.0, 4.0, 5.0),
        (15.0, 18.0, 12.0, 15.0),
    ]
    raw, _ = read_file(path, options=FileOptions(adjustment="raw"))
    assert raw.select("open", "high", "low", "close").rows() == [
        (10.0, 12.0, 8.0, 10.0),
        (20.0, 24.0, 16.0, 20.0),
    ]
    assert adjusted["volume"].to_list() == raw["volume"].to_list() == [100.0, 100.0]


def test_several_broken_rules_are_reported_together(tmp_path: Path) -> None:
    path = price_csv(tmp_path, BAD_LINES, name="BAD.csv")
    with pytest.raises(DataError) as err:
        read_file(path)
    text = str(err.value)
    for rule in BAD_RULES:
        assert f"{path}: {rule}" in text
    assert len(text.splitlines()) == len(BAD_RULES)


def test_many_bad_rows_show_the_first_lines_and_a_count(tmp_path: Path) -> None:
    lines = [f"2024-01-{d:02d},10,11,9,10,-1" for d in range(2, 10)]
    with pytest.raises(
        DataError, match=r"8 row\(s\) at line 2, line 3, line 4, line 5, line 6 \(\+3 more\)"
    ):
        read_file(price_csv(tmp_path, lines))


def test_unparseable_and_missing_cells_are_reported_together(tmp_path: Path) -> None:
    path = price_csv(tmp_path, ["2024-13-01,10,11,9,x,100", "2024-01-03,10,11,9,,100"])
    with pytest.raises(DataError) as err:
        read_file(path)
    assert "column 'date' has 1 unparseable value(s) at line 2 ('2024-13-01')" in str(err.value)
    assert "column 'close' has 1 unparseable value(s) at line 2 ('x')" in str(err.value)
    assert "column 'close' has 1 missing value(s) at line 3" in str(err.value)


def test_non_positive_open_is_reported_under_its_own_column(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="column 'open': prices must be finite and > 0"):
        read_file(price_csv(tmp_path, [OK1, "2024-01-03,-1,11,-2,10,100"]))


def test_warnings_do_not_block_and_are_in_the_report(tmp_path: Path) -> None:
    lines = [OK1, "2024-01-03,10.5,32,10,31,100", "2024-01-25,31,32,30,31,100"]
    policy = ContractPolicy(max_staleness_days=7, today=dt.date(2024, 3, 1))
    frame, report = read_file(price_csv(tmp_path, lines), options=FileOptions(policy=policy))
    assert frame.height == 3 and report.errors == []
    found = {(v.column, v.rule, v.where) for v in report.warnings}
    assert found == {
        ("close", "daily move beyond |log return| 0.5 (unadjusted split?)", "line 3"),
        ("date", "gap of more than 5 business days", "line 4 ('2024-01-25')"),
        ("date", "last date 2024-01-25 is older than 7 days", "ticker ACME"),
    }
    fresh = ContractPolicy(max_staleness_days=7, today=dt.date(2024, 1, 30))
    _, report = read_file(price_csv(tmp_path, lines), options=FileOptions(policy=fresh))
    assert not [v for v in report.warnings if "older than" in v.rule]


def test_cli_validate_prints_every_rule_or_ok(conf_dir: Path, tmp_path: Path) -> None:
    bad = price_csv(tmp_path, BAD_LINES, name="BAD.csv")
    result = _invoke("validate", "--config", str(conf_dir), "--data", str(bad))
    assert result.exit_code != 0
    assert "INVALID" in result.output and "Traceback" not in result.output
    for rule in BAD_RULES:
        assert f"BAD.csv: {rule}" in result.output
    good = price_csv(tmp_path, [OK1, OK2, "2024-01-19,11,12,10,11,50"], name="GOOD.csv")
    args = ("validate", "--config", str(conf_dir), "--data", str(good))
    result = _invoke(*args, "--contract-only")
    assert result.exit_code == 0, result.output
    assert "OK: 3 rows, tickers ['GOOD'], 2024-01-02..2024-01-19" in result.output
    assert "warning: " in result.output and "gap of more than 5 business days" in result.output
    # Without --contract-only, validate also says the config cannot train on 3 rows.
    result = _invoke(*args)
    assert result.exit_code == 2 and "OK: 3 rows" in result.output
    assert "cannot train with this config" in result.output and "GOOD has 3 row(s)" in result.output


def _mlflow_counts(db: Path) -> tuple[int, int]:
    if not db.exists():
        return 0, 0
    with sqlite3.connect(db) as con:
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        versions = con.execute("SELECT count(*) FROM model_versions").fetchone()[0]
    return runs, versions


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*")) if root.exists() else set()


def _prices(warehouse: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(warehouse))
    try:
        return con.sql("SELECT * FROM prices ORDER BY ticker, date").fetchall()
    finally:
        con.close()


def _bad_commands(conf_dir: Path, bad: Path) -> list[list[str]]:
    return [
        ["train", "--config", str(conf_dir), "--data", str(bad), "--trials", "1", "--quiet"],
        ["data", "import", str(bad), "--config", str(conf_dir)],
    ]


def test_bad_data_writes_no_snapshot_and_no_mlflow_run(conf_dir: Path, tmp_path: Path) -> None:
    good = price_csv(tmp_path, [OK1, OK2, OK3], name="GOOD.csv")
    assert _invoke("data", "import", str(good), "--config", str(conf_dir)).exit_code == 0
    warehouse, raw = tmp_path / "warehouse.duckdb", tmp_path / "data" / "raw"
    rows, files = _prices(warehouse), _files(raw)
    manifest = (raw / "manifest.jsonl").read_bytes()
    bad = price_csv(tmp_path, BAD_LINES, name="BAD.csv")
    for args in _bad_commands(conf_dir, bad):
        result = _invoke(*args)
        assert result.exit_code != 0, args
        for rule in BAD_RULES:
            assert rule in result.output, (args, result.output)
        assert _files(raw) == files
        assert (raw / "manifest.jsonl").read_bytes() == manifest
        assert _prices(warehouse) == rows
        assert _mlflow_counts(tmp_path / "mlflow.db") == (0, 0)
        assert not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize("command", ["train", "import"])
def test_bad_data_leaves_the_warehouse_file_untouched(
    conf_dir: Path, tmp_path: Path, command: str
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    bad = price_csv(tmp_path, BAD_LINES, name="BAD.csv")
    args = _bad_commands(conf_dir, bad)[0 if command == "train" else 1]
    raw_before = _files(tmp_path / "data" / "raw")
    result = _invoke(*args)
    assert result.exit_code != 0 and "prices must be finite" in result.output
    assert _files(tmp_path / "data" / "raw") == raw_before
    assert _mlflow_counts(tmp_path / "mlflow.db") == (0, 0)
    assert not warehouse.exists()
    assert not warehouse.with_name(warehouse.name + ".wal").exists()
