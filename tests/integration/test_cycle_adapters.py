"""The cycle's adapters on real components: the lock (a real ``flock`` held by a process we
kill -9), the ingest step (real files, snapshots and DuckDB), the registry as the retrain
schedule reads it (a real sqlite MLflow store) and the prediction log (a real SQLite file).

No model is trained or logged here; the whole cycle on a real champion is in
tests/e2e/test_cycle_month.py and tests/e2e/test_cycle_kills.py.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import polars as pl
import pytest
from support import SAMPLE

from pipeline.data.predlog import SQLiteLog
from pipeline.data.readers import FileSource
from pipeline.data.snapshots import SnapshotStore
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import LOG_COLUMNS, PriceBatch
from pipeline.errors import DataError
from pipeline.operations.adapters import LogScoredDates, RegistryModels
from pipeline.operations.lock import CycleBusyError, cycle_lock
from pipeline.operations.ports import Champion
from pipeline.operations.sources import (
    CachedSource,
    FetchIngest,
    FileIngest,
    FileOrStored,
    WarehouseSource,
)
from pipeline.tracking.store import ensure_store

NVDA = pl.read_csv(SAMPLE / "NVDA.csv", try_parse_dates=True)
HOLD = """
import sys, time
from pathlib import Path
from pipeline.operations.lock import cycle_lock
with cycle_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def test_the_lock_refuses_a_second_cycle_and_a_kill_9_of_its_holder_releases_it(
    tmp_path: Path,
) -> None:
    lock = tmp_path / "cycles" / ".lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(CycleBusyError, match=f"pid {holder.pid} on "), cycle_lock(lock):
            pass
        holder.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops the flock
        holder.wait(timeout=30)
    finally:
        holder.kill()
    with cycle_lock(lock):  # no stale lock to remove by hand
        pass
    assert lock.exists()  # never deleted (see pipeline/operations/lock.py)


def cut(rows: pl.DataFrame, last: str, folder: Path) -> Path:
    """The rows up to ``last`` as ``folder/NVDA.csv`` (one file per evening, as a cron job
    would leave it)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "NVDA.csv"
    rows.filter(pl.col("date") <= dt.date.fromisoformat(last)).write_csv(path)
    return path


def file_ingest(path: Path, tmp_path: Path) -> tuple[FileIngest, CachedSource]:
    """The ingest of ``path`` and what the steps then read (as bootstrap.cycle_ports)."""
    store = DuckDBStore(tmp_path / "warehouse.duckdb")
    file = CachedSource(FileSource(path))
    read = CachedSource(FileOrStored(file, WarehouseSource(store, lambda: ("NVDA",), "w")))
    return FileIngest(file, read, SnapshotStore(tmp_path / "raw"), store, "f"), read


def test_file_ingest_upserts_keeps_a_snapshot_and_skips_identical_content(tmp_path: Path) -> None:
    ingest, read = file_ingest(cut(NVDA, "2026-09-21", tmp_path / "a"), tmp_path)
    first = ingest()
    assert first.counts["snapshots_new"] == 1 and first.new_dates == len(first.dates)
    assert read.load().source.endswith("a/NVDA.csv")  # the whole history: the file itself
    same = file_ingest(cut(NVDA, "2026-09-21", tmp_path / "b"), tmp_path)[0]()
    new_and_reused = (same.counts["snapshots_new"], same.counts["snapshots_reused"])
    assert same.new_dates == 0 and new_and_reused == (0, 1)
    assert "0 new trading date(s) after 2026-09-21" in same.said


def test_a_file_of_only_the_new_rows_is_read_back_with_the_stored_history(tmp_path: Path) -> None:
    file_ingest(cut(NVDA, "2026-09-21", tmp_path / "a"), tmp_path)[0]()
    tail = cut(NVDA.filter(pl.col("date") > dt.date(2026, 9, 21)), "2026-09-23", tmp_path / "c")
    ingest, read = file_ingest(tail, tmp_path)
    new = ingest()
    assert new.new_dates == 2 and "2 rows of NVDA, 2026-09-22..2026-09-23" in new.said
    history = read.load()  # what score, monitor and train read: the warehouse's, whole
    assert history.source.startswith("w (NVDA)") and history.frame.height == NVDA.height - 2
    assert new.dates == tuple(history.frame["date"].to_list())  # the calendar to count on


def test_a_bad_file_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad" / "NVDA.csv"
    bad.parent.mkdir()
    bad.write_text("date,close\n2026-01-02,abc\n")
    with pytest.raises(DataError, match="unparseable"):
        file_ingest(bad, tmp_path)[0]()
    assert not (tmp_path / "raw" / "manifest.jsonl").exists()
    assert not (tmp_path / "warehouse.duckdb").exists()


class Download:
    """What yfinance would send: the sample's rows of each ticker from ``start`` on."""

    def __init__(self, tickers: tuple[str, ...], start: dt.date | None, until: str) -> None:
        self.params = {"tickers": list(tickers), "start": str(start) if start else None}
        self.tickers, self.start, self.until = tickers, start, dt.date.fromisoformat(until)

    def load(self) -> PriceBatch:
        frames = [
            pl.read_csv(SAMPLE / f"{t}.csv", try_parse_dates=True)
            .with_columns(ticker=pl.lit(t))
            .filter(pl.col("date") <= self.until)
            .filter(pl.col("date") >= (self.start or dt.date.min))
            for t in self.tickers
        ]
        frame = pl.concat(frames).select("ticker", "date", "open", "high", "low", "close", "volume")
        return PriceBatch(frame, "yfinance", "sha")


def test_fetch_downloads_each_ticker_from_its_last_stored_date_and_reads_the_warehouse(
    tmp_path: Path,
) -> None:
    store, raw = DuckDBStore(tmp_path / "warehouse.duckdb"), SnapshotStore(tmp_path / "raw")
    asked: list[tuple[tuple[str, ...], dt.date | None]] = []

    def fetch(until: str) -> FetchIngest:
        def download(tickers: tuple[str, ...], start: dt.date | None) -> Download:
            asked.append((tickers, start))
            return Download(tickers, start, until)

        stored = CachedSource(WarehouseSource(store, lambda: ("NVDA", "QQQ"), "warehouse"))
        return FetchIngest(lambda: ("NVDA", "QQQ"), download, raw, store, stored)

    first = fetch("2026-09-21")()
    assert asked == [(("NVDA", "QQQ"), None)]  # never stored: the whole history
    assert first.dates[-1] == dt.date(2026, 9, 21)
    later = fetch("2026-09-23")()
    assert asked[-1] == (("NVDA", "QQQ"), dt.date(2026, 9, 21))  # from the last stored bar
    assert later.new_dates == 2 and later.counts["snapshots_new"] == 2  # one per ticker
    assert later.dates[0] == NVDA["date"].min() and later.dates[-1] == dt.date(2026, 9, 23)


def registry_with(tmp_path: Path, lineage: list[dict[str, str]]) -> RegistryModels:
    """A real sqlite registry whose versions carry ``lineage`` tags (no model behind them:
    the schedule reads tags only), v1 the champion."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_store(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("M")
    for tags in lineage:
        client.create_model_version("M", source=str(tmp_path), tags=tags)
    client.set_registered_model_alias("M", "champion", "1")
    return RegistryModels(uri, {1: "M"}, "champion", 1, SnapshotStore(tmp_path / "raw"))


def test_the_last_retrain_is_the_newest_version_and_its_data_end_comes_from_its_snapshots(
    tmp_path: Path,
) -> None:
    raw = SnapshotStore(tmp_path / "raw")
    frame = FileSource(SAMPLE / "NVDA.csv").load().frame
    early = raw.record(PriceBatch(frame.head(5000), "f", "a"), "file", {})[0]
    late = raw.record(PriceBatch(frame.head(6000), "f", "b"), "file", {})[0]
    models = registry_with(
        tmp_path, [{"snapshot_ids": early.id}, {"snapshot_ids": late.id}, {"tickers": "NVDA"}]
    )
    last = models.last_retrain()  # v3 records no snapshots: unknown, and why
    assert (last.version, last.through) == ("3", None) and "records no snapshot_ids" in last.note
    champion = models.champions()[1]
    assert champion == Champion(1, "M", "1")
    assert models.trained_through(champion) == dt.date.fromisoformat(early.last_date)
    challenger = Champion(1, "M", "2")  # a version that lost the gate counts all the same
    assert models.trained_through(challenger) == dt.date.fromisoformat(late.last_date)


def test_the_last_scored_date_is_the_versions_newest_track_record_row(tmp_path: Path) -> None:
    log = SQLiteLog(tmp_path / "log.sqlite")
    days = [dt.date(2026, 9, d) for d in (21, 22, 23)]

    def logged(version: str, day: dt.date, source: str) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "ticker": ["NVDA"],
                "as_of_date": [day],
                "horizon": [1],
                "prediction": [0.01],
                "model_name": ["M"],
                "model_version": [version],
                "run_id": ["r"],
                "scored_at": [dt.datetime(2026, 9, 24)],
                "source": [source],
            },
            schema_overrides={"horizon": pl.Int32},
        ).select(LOG_COLUMNS)

    log.record(pl.concat([logged("1", days[0], "cycle"), logged("1", days[1], "replay")]))
    log.record(pl.concat([logged("1", days[2], "api"), logged("2", days[2], "cycle")]))
    scored = LogScoredDates(log)
    assert scored.last_scored(Champion(1, "M", "1")) == days[1]  # API calls are no record
    assert scored.last_scored(Champion(1, "M", "3")) is None


def test_cycle_refuses_a_bad_file_with_exit_2_before_writing_or_reaching_tracking(
    conf_dir: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from pipeline.cli import main

    bad = tmp_path / "bad" / "NVDA.csv"
    bad.parent.mkdir()
    bad.write_text("date,close\n2026-01-02,abc\n")
    args = ["cycle", "--config", str(conf_dir), "--data", str(bad)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 2 and "unparseable" in result.output, result.output
    config = {p for p in tmp_path.rglob("*") if conf_dir in p.parents}
    written = {p.name for p in tmp_path.rglob("*") if p.is_file() and p not in config}
    assert written == {"NVDA.csv", ".lock"}, written  # no store, warehouse, snapshot, record
