"""Close-only input (issue 22 item 1): ``date,close`` (plus ``ticker``) files, read, checked,
stored and turned into features; OHLV families left out under __AUTO__, refused when named.

The oracles are the frames written to disk (values read back must be the ones written), the
pre-close-only warehouse DDL written out literally, and features computed from full bars.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from realdata import business_day_panel, close_only
from support import make_project, sample_prices, with_bench, write_yaml

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.data.readers import FileOptions, FileSource, read_file
from pipeline.data.validation import check_contract
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import PRICE_COLUMNS, PriceBatch
from pipeline.errors import ConfigError, DataError, FeatureInputError
from pipeline.features.columns import feature_columns
from pipeline.model.transformer import PolarsFeatures

OHLV = ["open", "high", "low", "volume"]
# Every column the shipped model.yaml declares that reads open, high, low or volume.
OHLV_FEATURES = {
    "rolling_zscore_volume_20",
    "natr_14",
    "stoch_k_14",
    "stoch_d_14_3",
    "obv_ratio_20",
    "volume_ratio_5",
    "volume_ratio_20",
    "hl_range",
}
OLD_PRICES_DDL = """CREATE TABLE prices (
    ticker VARCHAR NOT NULL, date DATE NOT NULL, open DOUBLE NOT NULL, high DOUBLE NOT NULL,
    low DOUBLE NOT NULL, close DOUBLE NOT NULL, volume DOUBLE NOT NULL,
    source VARCHAR NOT NULL, loaded_at TIMESTAMP NOT NULL)"""


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    return business_day_panel()


def test_close_only_panel_reads_with_null_ohlv(tmp_path: Path, panel: pl.DataFrame) -> None:
    path = tmp_path / "panel.csv"
    close_only(panel).write_csv(path)
    frame, report = read_file(path)
    assert frame.columns == list(PRICE_COLUMNS) and report.errors == []
    assert all(frame.get_column(c).null_count() == frame.height for c in OHLV)
    expected = panel.sort("ticker", "date")
    assert frame.select("ticker", "date").equals(expected.select("ticker", "date"))
    assert np.allclose(frame["close"].to_numpy(), expected["close"].to_numpy(), rtol=1e-12)


def test_benchmark_date_close_file_takes_its_ticker_from_the_name(tmp_path: Path) -> None:
    path = tmp_path / "SPY.csv"
    spy = sample_prices("SPY")
    spy.select("date", "close").write_csv(path)
    frame = FileSource(path).load().frame
    assert frame["ticker"].unique().to_list() == ["SPY"]
    assert np.allclose(frame["close"].to_numpy(), spy["close"].to_numpy(), rtol=1e-12)


def test_adj_close_alone_is_the_close_unless_adjustment_is_raw(tmp_path: Path) -> None:
    path = tmp_path / "NVDA.csv"
    path.write_text("Date,Adj Close\n2024-01-02,10.5\n2024-01-03,11.25\n")
    frame, _ = read_file(path)
    assert frame["close"].to_list() == [10.5, 11.25]
    with pytest.raises(
        DataError, match=r"missing required column\(s\) \['close'\].*adjustment: raw"
    ):
        read_file(path, options=FileOptions(adjustment="raw"))
    mapped, _ = read_file(
        path, options=FileOptions(adjustment="raw", columns={"Adj Close": "close"})
    )
    assert mapped["close"].to_list() == [10.5, 11.25]


def test_adj_close_without_raw_close_leaves_raw_ohl_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "NVDA.csv"
    path.write_text("date,open,high,low,adj_close,volume\n2024-01-02,20,22,19,10.5,100\n")
    with caplog.at_level(logging.WARNING):
        frame, _ = read_file(path)
    assert frame.row(0, named=True) | {"date": None} == {
        "ticker": "NVDA",
        "date": None,
        "open": None,
        "high": None,
        "low": None,
        "close": 10.5,
        "volume": 100.0,
    }
    assert "['open', 'high', 'low'] left out" in caplog.text


def test_errors_in_close_only_files_name_file_column_and_rows(tmp_path: Path) -> None:
    path = tmp_path / "X.csv"
    path.write_text("date,close\n2024-01-02,10\n2024-01-03,abc\n2024-01-04,11\n")
    with pytest.raises(DataError) as err:
        read_file(path)
    assert str(err.value) == f"{path}: column 'close' has 1 unparseable value(s) at line 3 ('abc')"
    path.write_text("date,close\n2024-01-02,10\n2024-01-03,11\n2024-01-04,-1\n")
    with pytest.raises(DataError) as err:
        read_file(path)
    assert f"{path}: column 'close': prices must be finite and > 0: 1 row(s) at line 4" in str(
        err.value
    )
    parquet = tmp_path / "X.parquet"
    pl.DataFrame({"date": ["2024-01-02", "2024-01-02"], "close": [1.0, 2.0]}).write_parquet(parquet)
    with pytest.raises(DataError, match=r"column 'date': dates must be strictly increasing.*row 1"):
        read_file(parquet)


def test_high_and_low_are_checked_against_the_columns_present(tmp_path: Path) -> None:
    path = tmp_path / "X.csv"
    path.write_text("date,high,low,close\n2024-01-02,11,9,10\n2024-01-03,10.5,9,11\n")
    with pytest.raises(DataError) as err:  # no open: high >= close is the rule left
        read_file(path)
    assert str(err.value) == (
        f"{path}: column 'high': high must be >= max(open, close): 1 row(s) at line 3"
    )
    path.write_text("date,high,low,close\n2024-01-02,11,9,10\n2024-01-03,11.5,9,11\n")
    frame, _ = read_file(path)
    assert frame["open"].null_count() == 2 and frame["high"].to_list() == [11.0, 11.5]


def test_contract_refuses_a_partly_missing_optional_column() -> None:
    frame = (
        close_only(business_day_panel()).head(3).with_columns(volume=pl.Series([1.0, None, 2.0]))
    )
    report = check_contract(frame, "f")
    assert [(v.column, v.rule, v.where) for v in report.errors] == [
        ("volume", "volume must be finite and >= 0", "row 1")
    ]
    assert check_contract(frame.drop("volume"), "f").errors == []


def test_warehouse_stores_close_only_rows_also_in_an_old_file(
    tmp_path: Path, panel: pl.DataFrame
) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:  # a warehouse made before close-only input
        con.execute(OLD_PRICES_DDL)
    src = tmp_path / "p.csv"
    close_only(panel).write_csv(src)
    batch = FileSource(src).load()
    store = DuckDBStore(path)
    assert store.upsert(batch) == panel.height
    back = store.history(batch.tickers, ranges=batch.ranges).collect()
    assert back.select("ticker", "date").equals(batch.frame.select("ticker", "date"))
    assert back["close"].to_list() == batch.frame["close"].to_list()
    assert all(back[c].null_count() == back.height for c in OHLV)


def test_auto_leaves_ohlv_families_out_and_a_named_one_is_refused(tmp_path: Path) -> None:
    model = load_config(make_project(tmp_path)).model
    full = feature_columns(model)
    assert set(full) >= OHLV_FEATURES
    assert feature_columns(model, ("close",)) == tuple(c for c in full if c not in OHLV_FEATURES)
    named = model.model_copy(
        update={"selection": model.selection.model_copy(update={"features": ("rsi_14", "natr_14")})}
    )
    with pytest.raises(ConfigError, match=r"natr_14 \(needs high, low\)"):
        feature_columns(named, ("close",))


def test_validate_refuses_a_named_ohlv_feature_with_exit_2(tmp_path: Path) -> None:
    data = tmp_path / "p.csv"
    close_only(business_day_panel()).write_csv(data)
    spy = tmp_path / "SPY.csv"
    sample_prices("SPY").select("date", "close").write_csv(spy)
    conf = make_project(tmp_path, data={"benchmark_path": str(spy)})
    write_yaml(
        conf / "local" / "model.yaml",
        {"selection": {"features": ["rsi_14", "obv_ratio_20"], "selector": "none"}},
    )
    result = CliRunner().invoke(main, ["validate", "--config", str(conf), "--data", str(data)])
    assert result.exit_code == 2, result.output
    assert "obv_ratio_20 (needs volume)" in result.output


def test_feature_step_fitted_on_close_only_bars_needs_the_close_only(tmp_path: Path) -> None:
    spec = load_config(make_project(tmp_path)).model.features.model_dump_json()
    full = with_bench(sample_prices("NVDA"))
    bare = full.drop(OHLV)
    pf = PolarsFeatures(spec=spec).fit(bare)
    assert pf.feature_names_in_.tolist() == ["ticker", "date", "close", "bench_close"]
    names = pf.get_feature_names_out().tolist()
    assert not OHLV_FEATURES & set(names)
    assert set(pf.left_out_) == {
        "rolling_zscore",
        "natr",
        "stochastic",
        "obv_ratio",
        "volume_ratio",
        "hl_range",
    }
    # Oracle: the same columns computed from full bars, where OHLV are present.
    reference = PolarsFeatures(spec=spec, columns=tuple(names)).fit(full)
    assert np.array_equal(pf.transform(bare), reference.transform(full), equal_nan=True)
    # A model fitted on full bars refuses bars whose volume is empty, naming it.
    empty = full.with_columns(pl.lit(None, pl.Float64).alias("volume"))
    with pytest.raises(FeatureInputError, match=r"\['volume'\] are empty"):
        PolarsFeatures(spec=spec).fit(full).transform(empty)


def test_warehouse_batch_without_ohlv_round_trips(tmp_path: Path) -> None:
    frame = (
        close_only(business_day_panel())
        .with_columns([pl.lit(None, pl.Float64).alias(c) for c in OHLV])
        .select(PRICE_COLUMNS)
    )
    store = DuckDBStore(":memory:")
    batch = PriceBatch(frame=frame.sort("ticker", "date"), source="t", sha256="x")
    store.upsert(batch)
    back = store.history(batch.tickers, ranges=batch.ranges).collect()
    assert back.height == frame.height and back["open"].null_count() == frame.height
