"""The prediction log (issue 12): idempotent, atomic, joined to realised returns, written by
`score` and by `POST /predict`; since issue 23 in its own SQLite file, into which the log an
older warehouse kept is moved once. Real DuckDB and SQLite files; the realised returns are
checked against a numpy oracle over the shipped prices, never against our own output."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from legacylog import OLD_KEY, SOURCE_KEY, legacy_warehouse, tables
from support import SAMPLE

from pipeline.bootstrap import scratch_warehouse
from pipeline.data.predlog import SQLiteLog
from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import LOG_COLUMNS, LoadedModel
from pipeline.serving.api import create_app


def rows(
    dates: list[dt.date],
    horizon: int,
    version: str = "1",
    pred: float = 0.01,
    source: str = "score",
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ticker": ["NVDA"] * len(dates),
            "as_of_date": dates,
            "horizon": [horizon] * len(dates),
            "prediction": [pred] * len(dates),
            "model_name": ["M"] * len(dates),
            "model_version": [version] * len(dates),
            "run_id": ["r1"] * len(dates),
            "scored_at": [dt.datetime(2026, 1, 1)] * len(dates),
            "source": [source] * len(dates),
        },
        schema_overrides={"horizon": pl.Int32},
    ).select(LOG_COLUMNS)


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStore:
    wh = DuckDBStore(tmp_path / "wh.duckdb")
    wh.upsert(FileSource(SAMPLE / "NVDA.csv").load())
    return wh


def test_outcomes_are_the_forward_log_returns(store: DuckDBStore) -> None:
    prices = pl.read_csv(SAMPLE / "NVDA.csv", try_parse_dates=True)
    close, dates = prices["close"].to_numpy(), prices["date"].to_list()
    picks = [0, 100, 5000, len(dates) - 6, len(dates) - 2, len(dates) - 1]
    for h in (1, 5):
        store.record(rows([dates[i] for i in picks], h))
    out = store.outcomes().filter(pl.col("horizon") == 5).sort("as_of_date")
    for i, got in zip(picks, out.iter_rows(named=True), strict=True):
        if i + 5 < len(dates):
            assert got["realised"] == pytest.approx(np.log(close[i + 5] / close[i]), abs=1e-12)
            assert got["realised_date"] == dates[i + 5]
        else:  # the future is not in the warehouse yet
            assert got["realised"] is None and got["realised_date"] is None
    one = store.outcomes().filter(pl.col("horizon") == 1).sort("as_of_date")
    assert one["realised"].null_count() == 1  # only the last date waits for tomorrow


def test_the_log_is_idempotent_on_its_key(store: DuckDBStore) -> None:
    day = [dt.date(2024, 1, 2)]
    store.record(rows(day, 1, pred=0.01))
    store.record(rows(day, 1, pred=0.02))  # the same evening scored again: replaced
    store.record(rows(day, 1, version="2"))  # another version: its own row
    log = store.outcomes().sort("model_version")
    assert log.height == 2 and log["prediction"].to_list() == [0.02, 0.01]


def test_each_source_replaces_only_its_own_row(store: DuckDBStore) -> None:
    day = [dt.date(2024, 1, 2)]
    store.record(rows(day, 1, pred=0.01))
    store.record(rows(day, 1, pred=0.03, source="replay"))  # a replay does not rewrite it
    store.record(rows(day, 1, pred=0.04, source="cycle"))
    store.record(rows(day, 1, pred=0.02))  # the same evening scored again: replaced
    log = store.outcomes()
    by_source = dict(zip(log["source"], log["prediction"], strict=True))
    assert by_source == {"score": 0.02, "replay": 0.03, "cycle": 0.04}


def test_a_failed_write_leaves_no_rows(store: DuckDBStore) -> None:
    good = rows([dt.date(2024, 1, 2)], 1)
    bad = pl.concat([good, rows([dt.date(2024, 1, 3)], 1, source="nowhere")])
    with pytest.raises(sqlite3.IntegrityError):
        store.record(bad)  # the CHECK on source fails on the second row
    assert store.outcomes().height == 0


class Fixed:
    def predict(self, frame: object) -> np.ndarray:
        return np.full(len(frame), 0.5)  # type: ignore[arg-type]


class BrokenLog:
    def record(self, frame: pl.DataFrame) -> int:
        raise OSError("disk full")


def _bars(n: int = 30) -> list[dict[str, object]]:
    frame = pl.read_csv(SAMPLE / "NVDA.csv").tail(n).with_columns(pl.lit("NVDA").alias("ticker"))
    return frame.to_dicts()


def test_every_api_prediction_is_logged_or_not_served(store: DuckDBStore) -> None:
    model = LoadedModel(Fixed(), "M", "4", warmup=10, horizon=1, run_id="run-4")
    client = TestClient(create_app(model, record=store))
    assert client.post("/predict", json={"bars": _bars()}).status_code == 200
    (row,) = store.outcomes().to_dicts()
    assert (row["source"], row["model_version"], row["run_id"]) == ("api", "4", "run-4")
    assert row["prediction"] == 0.5 and row["as_of_date"] == dt.date(2026, 9, 25)
    broken = TestClient(create_app(model, record=BrokenLog()))
    response = broken.post("/predict", json={"bars": _bars()})
    assert response.status_code == 503 and "prediction log unavailable" in response.text


class Loader:
    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def load(self, model_uri: str) -> LoadedModel:
        return self.model


def test_score_logs_what_it_writes_and_a_refused_score_logs_nothing(
    conf_dir: Path, tmp_path: Path, ridge_model: LoadedModel
) -> None:
    from pipeline.config import load_config
    from pipeline.serving.score import ScorePorts, score
    from pipeline.serving.sinks import ParquetSink

    cfg = load_config(conf_dir)
    warehouse = DuckDBStore(tmp_path / "wh.duckdb")

    def run(data: Path) -> pl.DataFrame:
        ports = ScorePorts(
            source=FileSource(data),
            store=warehouse,
            loader=Loader(ridge_model),
            log=warehouse,
            workspace=scratch_warehouse,
        )
        return score(cfg, ports, ParquetSink(tmp_path / "p.parquet")).frame

    short = tmp_path / "NVDA.csv"
    pl.read_csv(SAMPLE / "NVDA.csv").tail(3).write_csv(short)
    with pytest.raises(Exception, match="not enough history"):
        run(short)
    assert not (tmp_path / "wh.duckdb").exists()  # refused before any write
    out = run(SAMPLE / "NVDA.csv")
    (row,) = warehouse.outcomes().to_dicts()
    assert row["source"] == "score" and row["prediction"] == out["prediction"][0]
    assert row["as_of_date"] == out["as_of_date"][0] and row["realised"] is None


def test_an_api_call_never_rewrites_the_track_record(store: DuckDBStore) -> None:
    """Issue 21 item 2: POST /predict for the key of a `score` row, through the write path
    `serve` uses (the warehouse's SQLite log, written directly), leaves the score row as it
    was."""
    day = dt.date(2026, 9, 25)  # the as-of date of the request's last bar
    store.record(rows([day], 1, version="4", pred=0.01))
    model = LoadedModel(Fixed(), "M", "4", warmup=10, horizon=1, run_id="run-4")
    with TestClient(create_app(model, record=SQLiteLog(store.log.path))) as client:
        for _ in range(2):
            assert client.post("/predict", json={"bars": _bars()}).status_code == 200
    logged = store.outcomes().filter(pl.col("as_of_date") == day)
    by_source = dict(zip(logged["source"], logged["prediction"], strict=True))
    assert by_source == {"score": 0.01, "api": 0.5}
    store.record(rows([day], 1, version="4", pred=0.02))  # re-scoring still replaces its own
    again = store.outcomes().filter(pl.col("source") == "score")["prediction"].to_list()
    assert again == [0.02]


def _key_days(n: int) -> list[dt.date]:
    return [dt.date(2024, 1, 2) + dt.timedelta(days=i) for i in range(n)]


@pytest.mark.parametrize("ddl", [OLD_KEY, SOURCE_KEY], ids=["before-issue-21", "issue-21"])
def test_a_log_kept_in_the_warehouse_moves_to_its_own_file_once(tmp_path: Path, ddl: str) -> None:
    """Issue 23: a warehouse whose log is a table of its own (either key) gives every row to
    the SQLite log on first use, then drops the table; opened again, nothing moves twice."""
    days = _key_days(300)
    logged = pl.concat(
        [
            rows(days[:100], 1, pred=0.01),
            rows(days[100:200], 1, pred=0.02, source="api"),
            rows(days[200:], 5, pred=0.03, source="replay"),
        ]
    )
    path = tmp_path / "old.duckdb"
    legacy_warehouse(path, logged, ddl=ddl)
    store = DuckDBStore(path)
    got = store.outcomes().select(LOG_COLUMNS).sort("as_of_date")
    assert got.equals(logged.sort("as_of_date"))
    assert not {"predictions", "v_prediction_outcomes"} & tables(path)  # no log, no view
    assert SQLiteLog(tmp_path / "old.log.sqlite").rows().height == 300
    # The log's key and CHECK: an API row beside a score row, a `cycle` row accepted.
    store.record(rows(days[:1], 1, pred=0.9, source="api"))
    store.record(rows(days[:1], 1, pred=0.8, source="cycle"))
    first = DuckDBStore(path).outcomes().filter(pl.col("as_of_date") == days[0])
    assert dict(zip(first["source"], first["prediction"], strict=True)) == {
        "score": 0.01,
        "api": 0.9,
        "cycle": 0.8,
    }
    assert DuckDBStore(path).outcomes().height == 302  # opened again: nothing moved twice


def test_a_move_interrupted_before_the_drop_is_repeated_without_changing_a_row(
    tmp_path: Path,
) -> None:
    """The rows reached the SQLite log but the table was not dropped (a crash in between),
    and the service logged a newer row on one of their keys since: the next open copies
    again, keeps the newer row, and adds none twice."""
    days = _key_days(10)
    path = tmp_path / "wh.duckdb"
    legacy_warehouse(path, rows(days, 1, pred=0.01, source="api"))
    log = SQLiteLog(tmp_path / "wh.log.sqlite")
    assert log.adopt(rows(days[:6], 1, pred=0.01, source="api")) == 6  # the interrupted copy
    log.record(rows(days[:1], 1, pred=0.5, source="api"))  # served after it
    out = DuckDBStore(path).outcomes().sort("as_of_date")
    assert out.height == 10 and out["prediction"].to_list() == [0.5] + [0.01] * 9
    assert "predictions" not in tables(path)


def test_any_job_opening_an_old_warehouse_moves_its_log_out(tmp_path: Path) -> None:
    """Not only `monitor`: an import (or `score`, `fetch`) opening the warehouse moves the
    rows first, so no command ever sees a log split in two."""
    days = _key_days(40)
    path = tmp_path / "warehouse.duckdb"
    legacy_warehouse(path, pl.concat([rows(days, 1), rows(days, 1, pred=0.7, source="api")]))
    DuckDBStore(path).upsert(FileSource(SAMPLE / "NVDA.csv").load())
    assert "predictions" not in tables(path)
    moved = SQLiteLog(tmp_path / "warehouse.log.sqlite").rows()
    assert moved.height == 80 and sorted(moved["source"].unique()) == ["api", "score"]
