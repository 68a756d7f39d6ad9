"""`serve --workers N` (issue 15): the worker factory's environment round trip; and the
prediction log's own SQLite file (issue 23), which every serving process and batch job writes
directly: every row logged exactly once by concurrent threads, all of a batch
or none of it, a source replacing only its own rows, and a writer that waits for another
instead of failing (several processes: tests/integration/test_concurrency.py). Real SQLite
files."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from support import make_project, sqlite_uri

from pipeline import serving_app as factory
from pipeline.cli import main
from pipeline.cli.common import load
from pipeline.data.predlog import SQLiteLog, log_path
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import LOG_COLUMNS
from pipeline.serving_app import ENV_VAR, FACTORY, ServeSpec


def rows(day: int, tickers: int = 1, prediction: float = 0.1, source: str = "api") -> pl.DataFrame:
    """Prediction-log rows (``LOG_COLUMNS``) for ``tickers`` tickers as of day ``day``."""
    n = tickers
    return pl.DataFrame(
        {
            "ticker": [f"T{i}" for i in range(n)],
            "as_of_date": [dt.date(2024, 1, 1) + dt.timedelta(days=day)] * n,
            "horizon": pl.Series([1] * n, dtype=pl.Int32),
            "prediction": [prediction] * n,
            "model_name": ["m"] * n,
            "model_version": ["1"] * n,
            "run_id": ["r"] * n,
            "scored_at": [dt.datetime(2024, 1, 1, 9, 30, 0, 123456)] * n,
            "source": [source] * n,
        }
    ).select(LOG_COLUMNS)


# --------------------------------------------------------------------------- factory


def test_the_spec_survives_the_environment_round_trip() -> None:
    spec = ServeSpec("/conf", "server", "sqlite:///x.db", "models:/M/3", 0.5, "DEBUG", True)
    assert ServeSpec.from_env(spec.to_env()) == spec
    assert ServeSpec.from_env(ServeSpec("/conf").to_env()) == ServeSpec("/conf")


def test_a_worker_without_a_spec_says_how_to_start_it() -> None:
    with pytest.raises(RuntimeError, match="stockpipe serve"):
        ServeSpec.from_env({})


def test_a_worker_rebuilds_the_app_the_command_would_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = make_project(tmp_path)
    spec = ServeSpec(str(conf), tracking_uri=sqlite_uri(tmp_path / "other"), model_uri="m")
    monkeypatch.setenv(ENV_VAR, spec.to_env()[ENV_VAR])
    built: list[Any] = []
    monkeypatch.setattr(factory, "build_app", lambda *a: built.append(a) or "app")
    assert factory.create_from_env() == "app"
    ((cfg, model_uri, interval),) = built
    assert cfg == load(conf, None, tracking_uri=spec.tracking_uri)
    assert cfg.tracking_uri == spec.tracking_uri and (model_uri, interval) == ("m", None)
    # Each worker writes the warehouse's own log file itself.
    assert factory.prediction_log(cfg).path == tmp_path / "warehouse.log.sqlite"


def test_serve_with_workers_hands_uvicorn_the_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.delenv(ENV_VAR, raising=False)
    args = ["--log-json", "serve", "--workers", "2", "--model-uri", "models:/M/3"]
    result = CliRunner().invoke(main, [*args, "--reload-interval", "2", "--tracking-uri", "x"])
    assert result.exit_code == 0, result.output
    ((app, options),) = calls
    assert app == FACTORY and options["factory"] is True and options["workers"] == 2
    spec = ServeSpec.from_env()
    assert spec.config_dir == str(Path("conf").resolve()) and spec.log_json
    assert (spec.model_uri, spec.reload_interval, spec.tracking_uri) == ("models:/M/3", 2.0, "x")


def test_serve_with_one_worker_runs_the_app_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[Any] = []
    built: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.setattr(factory, "build_app", lambda *a: built.append(a) or "app")
    result = CliRunner().invoke(main, ["serve", "--model-uri", "models:/M/3"])
    assert result.exit_code == 0, result.output
    assert calls == [
        ("app", {"host": "127.0.0.1", "port": 8000, "log_config": None, "access_log": False})
    ]
    assert built[0][1:] == ("models:/M/3", None)


# --------------------------------------------------------------------------- the SQLite log


def test_the_log_lives_beside_the_warehouse_and_reads_back_typed(tmp_path: Path) -> None:
    log = DuckDBStore(tmp_path / "w.duckdb").log
    assert log.path == tmp_path / "w.log.sqlite" and log_path(":memory:") == ":memory:"
    assert (
        log.rows().height == 0 and not (tmp_path / "w.log.sqlite").exists()
    )  # reads create nothing
    frame = pl.concat([rows(0, tickers=3), rows(1, source="score")])
    assert log.record(frame) == 4
    got = SQLiteLog(log.path).rows().sort("source", "ticker")  # another connection
    assert got.schema == frame.schema and got.equals(frame.sort("source", "ticker"))
    with sqlite3.connect(log.path) as con:  # WAL: readers and writers of other processes
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_source_replaces_only_its_own_rows_and_a_batch_is_all_or_nothing(
    tmp_path: Path,
) -> None:
    log = SQLiteLog(tmp_path / "log.sqlite")
    log.record(rows(0, prediction=0.1, source="score"))
    log.record(rows(0, prediction=0.2, source="api"))
    log.record(rows(0, prediction=0.3, source="score"))  # the evening scored again
    by_source = dict(log.rows().select("source", "prediction").iter_rows())
    assert by_source == {"score": 0.3, "api": 0.2}
    bad = pl.concat([rows(5), rows(6, source="nightly")])  # the CHECK refuses the second row
    with pytest.raises(sqlite3.IntegrityError):
        log.record(bad)
    assert log.rows().height == 2  # the first row of the refused batch is not there either
    assert log.adopt(pl.concat([rows(0, prediction=9.0), rows(7)])) == 1  # the newer row stays
    assert (
        dict(
            log.rows()
            .filter(pl.col("source") == "api")
            .select("as_of_date", "prediction")
            .iter_rows()
        )[dt.date(2024, 1, 1)]
        == 0.2
    )


def test_threads_sharing_one_log_lose_no_row(tmp_path: Path) -> None:
    log = SQLiteLog(tmp_path / "log.sqlite")
    threads = [
        threading.Thread(target=log.record, args=(rows(day, tickers=3),)) for day in range(40)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    logged = log.rows()
    assert logged.height == 120 and logged.select("ticker", "as_of_date").is_unique().all()


def test_a_writer_waits_for_another_instead_of_failing(tmp_path: Path) -> None:
    log = SQLiteLog(tmp_path / "log.sqlite")
    log.record(rows(0))
    other = sqlite3.connect(log.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process in the middle of its write
    done = threading.Event()

    def write() -> None:
        log.record(rows(1))
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    assert not done.wait(0.3)  # waiting for the lock, not failed
    assert SQLiteLog(log.path).rows().height == 1  # and readers are not blocked meanwhile
    other.execute("COMMIT")
    writer.join(30)
    assert done.is_set() and log.rows().height == 2
    other.close()
    impatient = SQLiteLog(log.path, busy_timeout=0.05)
    holder = sqlite3.connect(log.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # the API's 503
        impatient.record(rows(2))
    holder.execute("ROLLBACK")
    holder.close()
    assert impatient.record(rows(2)) == 1  # the connection is still usable
