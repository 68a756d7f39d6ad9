"""Several real processes writing the same stores at once lose nothing.

Each writer is a separate Python process; all are released together (they wait for a "go"
file), so their read-modify-write cycles interleave on the real files: the snapshot manifest,
the alias history kept in the MLflow sqlite registry, and the prediction log (its own SQLite
file, which `serve --workers N` and batch jobs write at once).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from pipeline.data.predlog import SQLiteLog
from pipeline.data.snapshots import SnapshotStore
from pipeline.tracking.registry import MlflowRegistry

WRITERS = 3

# argv: go-file, raw dir, ticker, count. Records `count` one-ticker batches of distinct
# content, so each is a new snapshot and a new manifest entry.
_RECORD = """
import datetime as dt, os, sys, time
from pathlib import Path
import polars as pl
from pipeline.data.snapshots import SnapshotStore
from pipeline.domain import PriceBatch

go, root, ticker, count = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
store = SnapshotStore(root)
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.01)
days = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(5)]
for n in range(count):
    frame = pl.DataFrame({"ticker": [ticker] * 5, "date": days, "open": [1.0 + n] * 5,
                          "high": [2.0 + n] * 5, "low": [0.5] * 5, "close": [1.5] * 5,
                          "volume": [10.0] * 5})
    store.record(PriceBatch(frame, "test", "x"), "file", {"n": n})
"""

# argv: go-file, tracking URI, versions... Promotes each version in turn, recorded.
_PROMOTE = """
import os, sys, time
from pathlib import Path
from pipeline.tracking.registry import MlflowRegistry

go, uri, versions = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
registry = MlflowRegistry(uri, "M")
registry.version_for_alias("champion")  # open the store before the start signal
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.01)
for version in versions:
    registry.set_alias("champion", version, record=True)
"""


def run_together(tmp_path: Path, script: str, argvs: list[list[str]]) -> None:
    """Start one process per argv, release them at once, and require each to succeed."""
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(go), *argv], stderr=subprocess.PIPE, text=True
        )
        for argv in argvs
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < len(procs) and time.monotonic() < deadline:
        time.sleep(0.05)  # every process has imported and waits: release them together
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]


def test_concurrent_snapshot_records_keep_every_manifest_entry(tmp_path: Path) -> None:
    root, count = tmp_path / "raw", 15
    tickers = [f"T{i}" for i in range(WRITERS)]
    run_together(tmp_path, _RECORD, [[str(root), t, str(count)] for t in tickers])
    entries = SnapshotStore(root).entries()
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))
    # Every parquet file written has its entry (none lost to a concurrent rewrite).
    assert sorted(s.path for s in entries) == files
    assert len(files) == WRITERS * count
    assert not list(root.rglob("*.tmp"))


# argv: go-file, warehouse, first day, count. Logs `count` requests of 2 tickers through the
# warehouse's prediction log, one transaction each, as a serving worker or `score` does.
_LOG = """
import datetime as dt, os, sys, time
from pathlib import Path
import polars as pl
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import LOG_COLUMNS

go, warehouse, first, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
log = DuckDBStore(Path(warehouse)).log
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.01)
for day in range(first, first + count):
    log.record(pl.DataFrame({
        "ticker": ["A", "B"], "as_of_date": [dt.date(2020, 1, 1) + dt.timedelta(days=day)] * 2,
        "horizon": pl.Series([1, 1], dtype=pl.Int32), "prediction": [0.1, 0.2],
        "model_name": "M", "model_version": "1", "run_id": "r",
        "scored_at": dt.datetime(2026, 1, 1), "source": "api",
    }).select(LOG_COLUMNS))
"""


def test_processes_logging_at_once_lose_no_prediction(tmp_path: Path) -> None:
    """Each process writes the log file itself; WAL and the busy timeout make them take
    turns (the log server that used to funnel them through one process is gone)."""
    warehouse, count = tmp_path / "wh.duckdb", 50
    argvs = [[str(warehouse), str(i * count), str(count)] for i in range(WRITERS)]
    run_together(tmp_path, _LOG, argvs)
    logged = SQLiteLog(tmp_path / "wh.log.sqlite").rows()
    assert logged.height == WRITERS * count * 2
    assert logged.select("ticker", "as_of_date").is_unique().all()
    assert not warehouse.exists()  # logging never opened the warehouse


def test_concurrent_identical_records_store_one_snapshot(tmp_path: Path) -> None:
    # The same content recorded by several processes at once is still stored once.
    root = tmp_path / "raw"
    run_together(tmp_path, _RECORD, [[str(root), "SAME", "1"]] * WRITERS)
    assert len(SnapshotStore(root).entries()) == 1
    assert len(list(root.rglob("*.parquet"))) == 1


@pytest.mark.slow  # several processes: seconds each
def test_concurrent_promotions_keep_the_whole_alias_history(tmp_path: Path) -> None:
    uri, per_writer = f"sqlite:///{tmp_path / 'mlflow.db'}", 4
    registry = MlflowRegistry(uri, "M")
    versions = [
        registry.register(f"file://{tmp_path}/model{i}", "", {"promoted": "false"})
        for i in range(WRITERS * per_writer)
    ]
    chunks = [versions[i::WRITERS] for i in range(WRITERS)]
    run_together(tmp_path, _PROMOTE, [[uri, *chunk] for chunk in chunks])
    history = registry.alias_history("champion")
    # Every promotion is recorded, and the last one recorded is where the alias is.
    assert sorted(history, key=int) == versions
    assert history[-1] == registry.version_for_alias("champion")
    for version in versions:
        assert registry.version_tags(version)["promoted"] == "true"


# argv: go-file, raw dir, warehouse.
_REBUILD = """
import os, sys, time
from pathlib import Path
from pipeline.data.rebuild import rebuild
from pipeline.data.snapshots import SnapshotStore

go, root, warehouse = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
(go.parent / f"ready-{os.getpid()}").touch()
while not go.exists():
    time.sleep(0.01)
rebuild(SnapshotStore(root), warehouse)
"""


@pytest.mark.slow  # seconds: keeps the fast suite under 2 minutes
def test_rebuild_removes_work_left_by_a_killed_rebuild_and_runs_one_at_a_time(
    tmp_path: Path,
) -> None:
    root, warehouse = tmp_path / "raw", tmp_path / "wh" / "stock.duckdb"
    run_together(tmp_path, _RECORD, [[str(root), "AAA", "3"]])
    # What a SIGKILL mid-rebuild leaves: a hidden work folder holding a partial database.
    killed = warehouse.parent / f".{warehouse.name}.rebuild-killed"
    killed.mkdir(parents=True)
    (killed / warehouse.name).write_bytes(b"partial")
    for ready in tmp_path.glob("ready-*"):
        ready.unlink()
    (tmp_path / "go").unlink()
    # Two rebuilds at once: both succeed, and neither sweeps the other's live work folder.
    run_together(tmp_path, _REBUILD, [[str(root), str(warehouse)]] * 2)
    assert not list(warehouse.parent.glob(f".{warehouse.name}.rebuild-*"))
    assert sorted(p.name for p in warehouse.parent.iterdir() if not p.name.startswith(".")) == [
        warehouse.name,
        *sorted(p.name for p in warehouse.parent.glob(f"{warehouse.name}.previous-*")),
    ]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from prices").fetchone() == (5,)
