"""The DuckDB warehouse: SQL views, idempotent upserts and the walk-forward fold manifest."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from support import SAMPLE

from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore, sql_dir
from pipeline.domain import FoldSpec
from pipeline.errors import DataError

PARAMS = FoldSpec(n_folds=5, test_size=250, horizon=1, purge=1)


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    s = DuckDBStore(tmp_path / "wh.duckdb")
    for t in ("NVDA", "SPY", "QQQ"):
        s.upsert(FileSource(SAMPLE / f"{t}.csv").load())
    return s


def test_sql_files_are_numbered_views() -> None:
    files = sorted(p.name for p in sql_dir().glob("*.sql"))
    assert files[0].startswith("000_")
    assert all(name[:3].isdigit() for name in files)
    creates = ("CREATE OR REPLACE VIEW", "CREATE OR REPLACE MACRO", "CREATE TABLE IF NOT EXISTS")
    for path in sql_dir().glob("0[1-9]*.sql"):  # one object a file (050: the prediction log)
        text = path.read_text()
        assert sum(text.count(c) for c in creates) == 1, path.name


def test_history_is_typed_and_matches_file(store: DuckDBStore) -> None:
    hist = store.history(("NVDA",)).collect()
    src = FileSource(SAMPLE / "NVDA.csv").load().frame
    assert hist.schema["date"] == pl.Date and hist.schema["close"] == pl.Float64
    assert hist.equals(src)


def test_upsert_is_idempotent_and_replaces(tmp_path: Path, store: DuckDBStore) -> None:
    batch = FileSource(SAMPLE / "NVDA.csv").load()
    store.upsert(batch)
    store.upsert(batch)
    assert store.history(("NVDA",)).collect().height == 6962
    changed = (
        batch.frame.with_columns(pl.col("close") * 1.0)
        .tail(1)
        .with_columns(pl.lit(999.0).alias("close"), pl.lit(1000.0).alias("high"))
    )
    store.upsert(replace(batch, frame=changed))
    hist = store.history(("NVDA",)).collect()
    assert hist.height == 6962 and hist["close"][-1] == 999.0


def test_recent_returns_last_rows_per_ticker(store: DuckDBStore) -> None:
    recent = store.history(("NVDA", "SPY"), rows=7).collect()
    assert recent.group_by("ticker").len().sort("ticker")["len"].to_list() == [7, 7]
    full = store.history(("SPY",)).collect()
    assert recent.filter(pl.col("ticker") == "SPY").equals(full.tail(7))


def test_unknown_ticker_is_a_data_error(store: DuckDBStore) -> None:
    with pytest.raises(DataError, match="no prices for tickers"):
        store.history(("AMD",))


def _calendar(store: DuckDBStore, tickers: tuple[str, ...]) -> list[Any]:
    frame = store.history(tickers).collect()
    return sorted(frame["date"].unique().to_list())


@pytest.mark.parametrize("tickers", [("NVDA",), ("NVDA", "SPY", "QQQ")])
@pytest.mark.parametrize(
    ("scheme", "purge", "embargo", "max_train"),
    [("expanding", 1, 0, None), ("expanding", 5, 2, None), ("sliding", 3, 0, 1000)],
)
def test_fold_invariants(
    store: DuckDBStore,
    tickers: tuple[str, ...],
    scheme: str,
    purge: int,
    embargo: int,
    max_train: int | None,
) -> None:
    params = replace(
        PARAMS,
        scheme=scheme,
        purge=purge,
        embargo=embargo,
        max_train_size=max_train,
        horizon=min(purge, 3),
    )
    folds = store.folds(tickers, params)
    cal = _calendar(store, tickers)
    idx = {d: i for i, d in enumerate(cal)}
    assert len(folds) == 5
    for f in folds:
        assert f.train_start <= f.train_end < f.test_start <= f.test_end
        # days strictly between train end and test start = purge + embargo
        assert idx[f.test_start] - idx[f.train_end] - 1 == purge + embargo
        assert idx[f.test_end] - idx[f.test_start] + 1 == 250
        if scheme == "sliding":
            assert idx[f.train_end] - idx[f.train_start] + 1 == max_train
        else:
            assert f.train_start == cal[0]
    for a, b in itertools.pairwise(folds):
        assert idx[b.test_start] == idx[a.test_end] + 1  # contiguous, no overlap
    # the last test day still has a known label: horizon days remain after it
    assert idx[folds[-1].test_end] == len(cal) - 1 - params.horizon
    assert folds[-1].test_rows == 250 * len(tickers)


def test_not_enough_history_is_explained(store: DuckDBStore) -> None:
    with pytest.raises(DataError, match="not enough history"):
        store.folds(("NVDA",), replace(PARAMS, n_folds=50, test_size=250))
    with pytest.raises(DataError, match="min_train_size"):
        store.folds(("NVDA",), replace(PARAMS, n_folds=5, test_size=1300))


def test_views_readable_from_plain_duckdb(tmp_path: Path, store: DuckDBStore) -> None:
    store.folds(("NVDA",), PARAMS)
    store.close()
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM v_folds").fetchall() == [(5,)]
    tickers = con.sql("SELECT DISTINCT ticker FROM v_prices ORDER BY 1").fetchall()
    assert [t[0] for t in tickers] == ["NVDA", "QQQ", "SPY"]


def test_jobs_read_back_only_their_input_range(store: DuckDBStore) -> None:
    """A shorter file for a ticker must not inherit rows an earlier, longer load left behind."""
    full = FileSource(SAMPLE / "NVDA.csv").load()
    short = full.frame.head(3000)
    ranges = {"NVDA": (short["date"].min(), short["date"].max())}
    hist = store.history(("NVDA",), ranges=ranges).collect()
    assert hist.equals(short)
    recent = store.history(("NVDA",), rows=5, ranges=ranges).collect()
    assert recent.equals(short.tail(5))
    folds = store.folds(("NVDA",), PARAMS, ranges)
    assert folds[-1].test_end < short["date"].max()
    assert folds[-1].test_end == short["date"][-1 - PARAMS.horizon]


def test_a_batch_with_a_key_twice_writes_nothing(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "wh.duckdb")
    batch = FileSource(SAMPLE / "NVDA.csv").load()
    twice = replace(batch, frame=pl.concat([batch.frame, batch.frame.tail(1)]))
    with pytest.raises(DataError, match="duplicate"):
        store.upsert(twice)
    assert not (tmp_path / "wh.duckdb").exists()


def test_a_warehouse_made_with_the_key_index_still_upserts(tmp_path: Path) -> None:
    """Warehouses made before the index was dropped keep their PRIMARY KEY: the delete-then-
    insert upsert replaces rows there too (DuckDB accepts a key deleted and inserted again in
    one transaction)."""
    path = tmp_path / "old.duckdb"
    ddl = (sql_dir() / "000_tables.sql").read_text()
    old = ddl.replace(
        "    loaded_at TIMESTAMP NOT NULL\n",
        "    loaded_at TIMESTAMP NOT NULL,\n    PRIMARY KEY (ticker, date)\n",
        1,
    )
    assert old != ddl
    with duckdb.connect(str(path)) as con:
        con.execute(old)
    store = DuckDBStore(path)
    batch = FileSource(SAMPLE / "NVDA.csv").load()
    store.upsert(batch)
    changed = batch.frame.tail(1).with_columns(
        pl.lit(999.0).alias("close"), pl.lit(1000.0).alias("high")
    )
    store.upsert(replace(batch, frame=changed))
    hist = store.history(("NVDA",)).collect()
    assert hist.height == batch.frame.height and hist["close"][-1] == 999.0
