"""The prediction log's own store: SQLite in WAL mode, in a file next to the warehouse.

The log used to be a table of the DuckDB warehouse, and DuckDB lets one process write a file
at a time: a busy service held the prices file and every batch job waited for it. SQLite in
WAL mode takes writers from any number of processes (a writer waits its turn for a few
milliseconds, up to ``busy_timeout``) and its readers never wait, so `serve --workers N`,
`score`, replay and `monitor` each open the log directly. Every commit is synced
(``synchronous=FULL``, ~1.5 ms): a request answered 200 has its rows on disk.

Realised outcomes still come from one SQL view over the warehouse's prices
(``DuckDBStore.outcomes``): DuckDB cannot scan SQLite offline, so the log's rows are read
here into Arrow and registered there as ``predictions``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from pipeline.data.sql_files import sql_dir
from pipeline.domain import LOG_COLUMNS

# The log's primary key (sql/log/050_predictions.sql).
KEY = ("model_name", "model_version", "ticker", "as_of_date", "horizon", "source")
BUSY_TIMEOUT = 60.0  # seconds a writer waits for another one (they hold the lock for ms)
DATE, STAMP = "%Y-%m-%d", "%Y-%m-%d %H:%M:%S%.6f"  # how dates and UTC times are stored
_COLUMNS = ", ".join(LOG_COLUMNS)
_MARKS = ", ".join("?" for _ in LOG_COLUMNS)
# Column names are ours (LOG_COLUMNS), never input; the values are always bound.
REPLACE = f"INSERT OR REPLACE INTO predictions ({_COLUMNS}) VALUES ({_MARKS})"
ADOPT = f"INSERT OR IGNORE INTO predictions ({_COLUMNS}) VALUES ({_MARKS})"
READ = f"SELECT {_COLUMNS} FROM predictions"
SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.String(),
    "as_of_date": pl.Date(),
    "horizon": pl.Int32(),
    "prediction": pl.Float64(),
    "model_name": pl.String(),
    "model_version": pl.String(),
    "run_id": pl.String(),
    "scored_at": pl.Datetime("us"),
    "source": pl.String(),
}


def log_path(warehouse: Path | str) -> Path | str:
    """Where the log of ``warehouse`` lives: ``<stem>.log.sqlite`` beside it (``:memory:``
    for an in-memory warehouse)."""
    if str(warehouse) == ":memory:":
        return ":memory:"
    path = Path(warehouse)
    return path.with_name(f"{path.stem}.log.sqlite")


@functools.cache
def _ddl() -> str:
    return (sql_dir() / "log" / "050_predictions.sql").read_text(encoding="utf-8")


def empty_log() -> pl.DataFrame:
    """No log rows, with the log's column types."""
    return pl.DataFrame(schema=SCHEMA).select(LOG_COLUMNS)


class SQLiteLog:
    """A ``PredictionLog`` in one SQLite file (see the module docstring). One connection per
    process, used by one thread at a time: SQLite serialises writers anyway."""

    def __init__(self, path: Path | str, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        self._pid = 0

    def record(self, frame: pl.DataFrame) -> int:
        """Insert or replace ``frame``'s rows (``LOG_COLUMNS``) in one committed transaction:
        all of them or none. The key holds the source, so a source replaces only its own."""
        with self._transaction() as con:
            con.executemany(REPLACE, _rows(frame))
        return frame.height

    def adopt(self, frame: pl.DataFrame) -> int:
        """Copy rows from an older log in one transaction, keeping the row already here on a
        shared key (it was written later); returns how many were new."""
        with self._transaction() as con:
            before = con.total_changes
            con.executemany(ADOPT, _rows(frame))
            return con.total_changes - before

    def rows(self) -> pl.DataFrame:
        """Every logged row (``LOG_COLUMNS``, typed); empty while nothing was ever logged."""
        if self.path != ":memory:" and not Path(self.path).exists():
            return empty_log()  # reading creates nothing
        with self._lock:
            found = self._connection().execute(READ).fetchall()
        # Dates and times arrive as the text they are stored as, then are parsed.
        stored = {**SCHEMA, "as_of_date": pl.String(), "scored_at": pl.String()}
        raw = pl.DataFrame(found, schema=stored, orient="row")
        return raw.with_columns(
            pl.col("as_of_date").str.to_date(DATE),
            pl.col("scored_at").str.to_datetime(STAMP, time_unit="us"),
        )

    def close(self) -> None:
        """Close this process's connection (the next use opens another)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so a
        # transaction never fails half-way on another process's lock.
        with self._lock:
            con = self._connection()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                # On a broken connection the rollback fails too; the first error is the one.
                with contextlib.suppress(sqlite3.Error):
                    con.rollback()
                raise
            con.commit()

    def _connection(self) -> sqlite3.Connection:
        # A forked child must not use its parent's connection; it opens its own.
        if self._con is not None and self._pid == os.getpid():
            return self._con
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            con.execute("PRAGMA journal_mode=WAL")  # persistent; a no-op once set
            con.execute("PRAGMA synchronous=FULL")  # per connection: sync every commit
            con.executescript(_ddl())
        except BaseException:
            con.close()
            raise
        self._con, self._pid = con, os.getpid()
        return con


def _rows(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    """``frame``'s log columns as bound values: dates and UTC times as ISO text."""
    text = frame.select(LOG_COLUMNS).with_columns(
        pl.col("as_of_date").cast(pl.Date).dt.strftime(DATE),
        pl.col("scored_at").cast(pl.Datetime("us")).dt.strftime(STAMP),
    )
    return text.rows()
