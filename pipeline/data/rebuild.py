"""`stockpipe data rebuild`: recreate the warehouse from the raw snapshots it caches.

Every fetch and import keeps its validated rows as an immutable snapshot, so the prices can
always be rebuilt from them. The rebuild reads and checks every snapshot first and refuses,
changing nothing, if one is missing, unreadable or does not match its manifest sha256. It
then loads them oldest first (so, through the upsert, newer snapshots win on (ticker, date))
into a new file next to the warehouse, keeps the old file under ``<name>.corrupt-<UTC stamp>``
(``.previous-`` when it was still readable) and renames the new one into place. Nothing is
deleted. The prediction log has its own file (``pipeline.data.predlog``), which a rebuild
leaves alone; only an old file that still keeps a log of its own (made before that file
existed, and never opened since) has its rows moved into it first, salvaged chunk by chunk
from a damaged file, the result saying how many rows were lost. Price rows that reached the
warehouse without a snapshot are written again by the next command that reads their file.

Rebuilds into one folder run one at a time (a lock on the folder), so a work folder found
while holding that lock was left by a rebuild that was killed, and is removed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.atomic import ensure_writable, file_lock
from pipeline.data.snapshots import SnapshotStore
from pipeline.data.warehouse import DuckDBStore, WarehouseCorruptError
from pipeline.domain import PriceBatch


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild did: the new warehouse, where the old one went, and what went in."""

    warehouse: Path
    kept_as: Path | None
    snapshots: int
    rows: int
    predictions: int = 0  # logged predictions moved from the old file into the log
    log_problem: str | None = None  # what of the old file's log could not be read


def _batches(snapshots: SnapshotStore) -> list[PriceBatch]:
    """Every snapshot as a batch, oldest first; raises (naming it) on the first bad one."""
    # Each batch's source is its snapshot id, so the rebuilt rows say where they came from.
    entries = sorted(snapshots.require_entries(), key=lambda s: s.created_at)
    return [snapshots.load([snap]) for snap in entries]


def _state(warehouse: Path, lock_timeout: float) -> str:
    """'missing', 'corrupt' or 'previous' (readable); a locked warehouse raises DataError."""
    if not warehouse.exists():
        return "missing"
    try:
        DuckDBStore(warehouse, lock_timeout).verify()
    except WarehouseCorruptError:
        return "corrupt"
    return "previous"


def _move_log(warehouse: Path, state: str, lock_timeout: float) -> tuple[int, str | None]:
    """A prediction log the old file still keeps (what can be read of it) moved into the
    warehouse's log file in one transaction: (rows moved, what could not be read, or None).
    A row the log already holds on the same key was written later and stays."""
    if state == "missing":
        return 0, None
    old = DuckDBStore(warehouse, lock_timeout)
    found = old.read_log()
    if found.rows.height:
        old.log.adopt(found.rows)
    return found.rows.height, found.problem


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _keep_aside(warehouse: Path, state: str, stamp: str) -> Path | None:
    """Keep the old file (and its write-ahead log, which must not meet the new file) under
    ``<name>.<state>-<stamp>``. A hard link keeps the warehouse path in place until the new
    file replaces it; where links are not supported, a rename."""
    kept = warehouse.with_name(f"{warehouse.name}.{state}-{stamp}")
    n = 1
    while kept.exists() or _wal(kept).exists():  # two rebuilds within one second
        kept = warehouse.with_name(f"{warehouse.name}.{state}-{stamp}-{n}")
        n += 1
    wal = _wal(warehouse)
    if wal.exists():
        wal.rename(_wal(kept))
    if state == "missing":
        return None
    try:
        os.link(warehouse, kept)
    except OSError:
        warehouse.rename(kept)
    return kept


def _work_prefix(warehouse: Path) -> str:
    return f".{warehouse.name}.rebuild-"


def _sweep_killed_work(warehouse: Path) -> None:
    """Remove work folders of killed rebuilds (only call while holding the rebuild lock)."""
    for stale in warehouse.parent.glob(f"{_work_prefix(warehouse)}*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def rebuild(snapshots: SnapshotStore, warehouse: Path, lock_timeout: float = 60.0) -> RebuildResult:
    """Rebuild ``warehouse`` from every snapshot in the manifest (see the module doc)."""
    ensure_writable(warehouse, "warehouse")
    batches = _batches(snapshots)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    # The folder itself is the lock (a lock file would be left next to the warehouse).
    with file_lock(warehouse.parent):
        _sweep_killed_work(warehouse)
        state = _state(warehouse, lock_timeout)
        # DuckDB refuses an existing empty file, so the new database is made inside a fresh
        # folder next to the warehouse (same file system, so the final rename is atomic).
        work = Path(tempfile.mkdtemp(dir=warehouse.parent, prefix=_work_prefix(warehouse)))
        try:
            fresh = work / warehouse.name
            store = DuckDBStore(fresh)
            for batch in batches:
                store.upsert(batch)
            rows = store.verify()  # distinct (ticker, date) rows, read back from the new file
            # Before the old file is set aside: its log, if it still keeps one, is not lost.
            copied, problem = _move_log(warehouse, state, lock_timeout)
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            kept = _keep_aside(warehouse, state, stamp)
            fresh.replace(warehouse)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return RebuildResult(warehouse, kept, len(batches), rows, copied, problem)
