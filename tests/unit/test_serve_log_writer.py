"""`serve --workers N` (issue 15): the worker factory's environment round trip, the group-commit
prediction log (every row logged exactly once; a failed flush fails every request in it), and
the warehouse hold the service's processes share."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner
from support import make_project, sqlite_uri

from pipeline.cli import main
from pipeline.cli.common import load
from pipeline.data.warehouse import DuckDBStore
from pipeline.serving import factory
from pipeline.serving.factory import ENV_VAR, FACTORY, ServeSpec
from pipeline.serving.logserver import LogServer, PredictionLogError, RemoteLog
from pipeline.serving.logsession import HeldWarehouse, ProcessLock, writer_lock
from pipeline.serving.logwriter import GroupWriter


def rows(day: int, tickers: int = 1, prediction: float = 0.1) -> pl.DataFrame:
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
            "scored_at": [dt.datetime(2024, 1, 1)] * n,
            "source": ["api"] * n,
        }
    )


class SlowLog:
    """Records every batch written; slow enough that concurrent callers share a flush."""

    def __init__(self, fail: bool = False, delay: float = 0.02) -> None:
        self.batches: list[pl.DataFrame] = []
        self.fail = fail
        self.delay = delay

    def record(self, frame: pl.DataFrame) -> int:
        time.sleep(self.delay)
        if self.fail:
            raise OSError("disk full")
        self.batches.append(frame)
        return frame.height


def in_threads(writer: GroupWriter, frames: list[pl.DataFrame]) -> list[Any]:
    """``writer.record`` of every frame at once, one thread each: results or exceptions."""
    out: list[Any] = [None] * len(frames)

    def one(i: int) -> None:
        try:
            out[i] = writer.record(frames[i])
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(frames))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


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
    ((cfg, model_uri, interval, log),) = built
    assert cfg == load(conf, None, tracking_uri=spec.tracking_uri)
    assert cfg.tracking_uri == spec.tracking_uri and (model_uri, interval, log) == ("m", None, None)
    # Started by `serve --workers N`: the worker logs through the command's process.
    remote = ServeSpec(str(conf), log_address="/tmp/x.sock", log_authkey="k")
    monkeypatch.setenv(ENV_VAR, remote.to_env()[ENV_VAR])
    factory.create_from_env()
    assert isinstance(built[-1][3], RemoteLog) and built[-1][3].address == "/tmp/x.sock"


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


# --------------------------------------------------------------------------- group commit


def test_every_row_is_logged_exactly_once_in_fewer_transactions() -> None:
    log = SlowLog()
    writer = GroupWriter(log)
    frames = [rows(day, tickers=3) for day in range(40)]
    assert in_threads(writer, frames) == [3] * 40
    writer.close()
    logged = pl.concat(log.batches)
    assert logged.height == 120 and logged.select("ticker", "as_of_date").is_unique().all()
    assert writer.flushes == len(log.batches) < 40  # requests shared transactions


def test_a_failed_flush_fails_every_request_waiting_for_it() -> None:
    writer = GroupWriter(SlowLog(fail=True))
    out = in_threads(writer, [rows(day) for day in range(10)])
    assert all(isinstance(o, OSError) for o in out), out
    writer.close()


class GatedStore(DuckDBStore):
    """A warehouse whose first write waits for ``gate``: later requests queue meanwhile."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.writes = 0

    def record(self, frame: pl.DataFrame) -> int:
        self.writes += 1
        if self.writes == 1:
            self.gate.wait(10)
        return super().record(frame)


def test_one_key_twice_in_a_batch_keeps_the_later_row(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "w.duckdb")
    writer = GroupWriter(store)
    threads = [threading.Thread(target=writer.record, args=(rows(9),))]
    threads += [
        threading.Thread(target=writer.record, args=(rows(0, prediction=p),)) for p in (1, 2)
    ]
    for t in threads:  # the first flush is held at the gate; the other two share the next
        t.start()
        time.sleep(0.1)
    store.gate.set()
    for t in threads:
        t.join(10)
    writer.close()
    assert store.writes == 2  # no "row updated twice" error: the batch kept the later row
    logged = store.outcomes().sort("as_of_date")
    assert logged["prediction"].to_list() == [2.0, 0.1]


def test_a_writer_is_reusable_after_close() -> None:
    log = SlowLog(delay=0)
    writer = GroupWriter(log)
    writer.record(rows(0))
    writer.close()
    writer.record(rows(1))  # an app started again (a second TestClient) logs again
    writer.close()
    assert [b.height for b in log.batches] == [1, 1]


# --------------------------------------------------------------------------- one log writer


def test_the_log_server_commits_what_every_worker_sends_once() -> None:
    log = SlowLog()
    server = LogServer(log)
    server.start()
    try:
        # One RemoteLog per "worker", each behind its own group commit, as in the workers.
        workers = [GroupWriter(RemoteLog(server.address, server.authkey)) for _ in range(2)]
        frames = [rows(day, tickers=2) for day in range(30)]
        out = in_threads(workers[0], frames[:15]) + in_threads(workers[1], frames[15:])
        assert out == [2] * 30
        for worker in workers:
            worker.close()
    finally:
        server.close()
    logged = pl.concat(log.batches)
    assert logged.height == 60 and logged.select("ticker", "as_of_date").is_unique().all()


def test_a_failed_commit_in_the_log_server_fails_the_workers_requests() -> None:
    server = LogServer(SlowLog(fail=True))
    server.start()
    try:
        worker = GroupWriter(RemoteLog(server.address, server.authkey))
        out = in_threads(worker, [rows(day) for day in range(5)])
        assert all(isinstance(o, PredictionLogError) and "disk full" in str(o) for o in out)
    finally:
        server.close()
    with pytest.raises(PredictionLogError, match="unreachable"):  # the server is gone
        RemoteLog(server.address, server.authkey).record(rows(0))


# --------------------------------------------------------------------------- warehouse hold


def test_the_held_warehouse_commits_and_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    writer = GroupWriter(HeldWarehouse(DuckDBStore(path), writer_lock(path)), idle=0.05)
    assert in_threads(writer, [rows(day, 2) for day in range(20)]) == [2] * 20
    time.sleep(0.3)  # idle: the connection is closed and the file free for others
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM predictions").fetchone() == (40,)
    writer.close()


def test_a_waiting_process_is_seen_by_the_holder(tmp_path: Path) -> None:
    lock = writer_lock(tmp_path / "w.duckdb")
    other = writer_lock(tmp_path / "w.duckdb")
    assert isinstance(lock, ProcessLock) and isinstance(other, ProcessLock)
    lock.acquire()
    assert not lock.contended()
    waiter = threading.Thread(target=other.acquire)  # flock: one open file each, as processes
    waiter.start()
    time.sleep(0.1)
    assert lock.contended()
    lock.release()
    waiter.join(5)
    assert not waiter.is_alive()
    other.release()
    assert writer_lock(":memory:") is None
