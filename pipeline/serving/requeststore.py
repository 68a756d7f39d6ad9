"""The service's request log: one row per HTTP request, in the prediction log's SQLite file.

The middleware (``pipeline.serving.requestlog``) measures every request and hands a
``RequestRecord`` to a ``RequestSink``. ``BufferedRequests`` only appends it to an in-memory
queue: no I/O and no lock on the event loop (about a microsecond). Its background thread
writes the queue every ``FLUSH_SECONDS`` (sooner once ``BATCH`` rows wait) with executemany in
one transaction, and writes what is left when the app shuts down. A write that fails (a full
disk, the file locked past the busy timeout) never fails a request: its rows are dropped
with a warning, at most one a minute. The queue is bounded too (``MAX_PENDING``: when the
disk stalls, new rows are dropped rather than memory growing).

``RequestStore`` is the table (``sql/log/060_requests.sql``): every write also deletes the
rows beyond the newest ``max_rows`` (``MAX_ROWS``), so after any commit the table holds at
most that many (~100 bytes a row). Several worker processes write the same file (WAL, busy
timeout, as ``pipeline.data.predlog``); its connections use ``synchronous=NORMAL``, which in
WAL mode cannot corrupt the file: a power cut may lose the last commits of a log that is no
track record, and no commit waits for the disk. `monitor` reads it through ``since``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import polars as pl

from pipeline.data.predlog import connect, ddl

log = logging.getLogger(__name__)

MAX_ROWS = 100_000  # rows kept: the newest; a few days of a busy service, ~10 MB
BATCH = 500  # rows waiting that wake the writer before its next tick
FLUSH_SECONDS = 1.0  # the writer's tick
MAX_PENDING = 50_000  # rows held in memory while writes fail or wait; newer ones are dropped
BUSY_TIMEOUT = 5.0  # seconds a write waits for another process's (held for milliseconds)
WARN_EVERY = 60.0  # seconds between two warnings about dropped rows
STAMP = "%Y-%m-%d %H:%M:%S.%f"  # UTC, as stored (sortable fixed-width text)
COLUMNS = (
    *("at", "endpoint", "method", "status", "latency_ms"),
    *("request_id", "model_version", "tickers"),
)
INSERT = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
# Rowids are consecutive (rows leave only from the oldest end): keep the newest ``?``.
PRUNE = "DELETE FROM requests WHERE rowid <= (SELECT max(rowid) FROM requests) - ?"
READ = "SELECT at, endpoint, method, status, latency_ms FROM requests WHERE at >= ?"
SCHEMA: dict[str, pl.DataType] = {
    "at": pl.String(),
    "endpoint": pl.String(),
    "method": pl.String(),
    "status": pl.Int64(),
    "latency_ms": pl.Float64(),
}


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One answered request, as the middleware measured it."""

    at: float  # unix seconds when it arrived
    endpoint: str  # the matched route's path
    method: str
    status: int
    latency_ms: float
    request_id: str
    model_version: str | None  # what answered (``"3"``, ``"h1=3,h5=2"``)
    tickers: int | None  # how many a /predict carried

    def row(self) -> tuple[object, ...]:
        """The values bound to ``INSERT``: the time as UTC text (``STAMP``; isoformat is the
        fastest way there, ~2 µs, its "+00:00" cut off)."""
        stamp = dt.datetime.fromtimestamp(self.at, dt.UTC).isoformat(" ", "microseconds")[:26]
        return (
            *(stamp, self.endpoint, self.method, self.status, self.latency_ms),
            *(self.request_id, self.model_version, self.tickers),
        )


class RequestSink(Protocol):
    """Where the middleware hands each request's record: must never block nor raise."""

    def add(self, record: RequestRecord) -> None: ...

    def close(self) -> None: ...


class RequestWriter(Protocol):
    """What ``BufferedRequests`` writes its batches to (``RequestStore``)."""

    path: Path | str

    def write(self, records: Sequence[RequestRecord]) -> int: ...


class RequestStore:
    """The ``requests`` table of the log file at ``path``, kept to the newest ``max_rows``.
    One connection per process, used by one thread at a time."""

    def __init__(
        self, path: Path | str, max_rows: int = MAX_ROWS, busy_timeout: float = BUSY_TIMEOUT
    ) -> None:
        self.path = path
        self.max_rows = max_rows
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._con: sqlite3.Connection | None = None
        self._pid = 0

    def write(self, records: Sequence[RequestRecord]) -> int:
        """Insert ``records`` and drop the rows beyond the newest ``max_rows``, in one
        committed transaction; returns how many were inserted."""
        with self._transaction() as con:
            con.executemany(INSERT, [r.row() for r in records])
            con.execute(PRUNE, (self.max_rows,))
        return len(records)

    def since(self, start: dt.datetime) -> pl.DataFrame:
        """The requests that arrived at or after ``start`` (an aware time, or naive UTC):
        ``at`` (UTC, naive), ``endpoint``, ``method``, ``status``, ``latency_ms``."""
        if start.tzinfo is not None:
            start = start.astimezone(dt.UTC).replace(tzinfo=None)
        found: list[tuple[object, ...]] = []
        if self.path == ":memory:" or Path(self.path).exists():  # reading creates nothing
            with self._lock:
                found = self._connection().execute(READ, (start.strftime(STAMP),)).fetchall()
        raw = pl.DataFrame(found, schema=SCHEMA, orient="row")
        return raw.with_columns(pl.col("at").str.to_datetime("%Y-%m-%d %H:%M:%S%.6f"))

    def count(self) -> int:
        """How many rows the table holds."""
        with self._lock:
            return int(self._connection().execute("SELECT count(*) FROM requests").fetchone()[0])

    def close(self) -> None:
        """Close this process's connection (the next use opens another)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE: the write lock up front (waiting up to busy_timeout), as predlog.
        with self._lock:
            con = self._connection()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    con.rollback()
                raise
            con.commit()

    def _connection(self) -> sqlite3.Connection:
        # A forked child must not use its parent's connection; it opens its own.
        if self._con is None or self._pid != os.getpid():
            self._con = connect(self.path, self.busy_timeout, ddl("060_requests.sql"), "NORMAL")
            self._pid = os.getpid()
        return self._con


class BufferedRequests:
    """A ``RequestSink`` whose ``add`` only queues; a daemon thread, started by the first
    record in each process, writes the queue to ``store`` (see the module docstring)."""

    def __init__(
        self,
        store: RequestWriter,
        flush_seconds: float = FLUSH_SECONDS,
        batch: int = BATCH,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self.batch = batch
        self.max_pending = max_pending
        self.written = 0  # rows committed
        self.failed = 0  # rows whose write failed
        self.overflowed = 0  # rows refused by a full queue (counted on the event loop only)
        self._pending: deque[RequestRecord] = deque()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._flushing = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._warned_at = -WARN_EVERY
        self._reported = 0  # failed + overflowed already in a warning

    def add(self, record: RequestRecord) -> None:
        """Queue ``record`` (dropped, counted, when ``max_pending`` rows already wait)."""
        if self._pid != os.getpid() or self._stop.is_set():
            self._start()  # the first record of this process, or the first after close()
        if len(self._pending) >= self.max_pending:
            self.overflowed += 1
            return
        self._pending.append(record)
        if len(self._pending) >= self.batch:
            self._wake.set()

    def flush(self) -> int:
        """Write every queued row now, ``batch`` rows a transaction (the file's write lock,
        which the prediction log's writers share, is held for milliseconds only); returns how
        many were written. A failed write drops its rows (with a rate-limited warning) and
        ends this flush: the rest wait for the next one."""
        written = 0
        with self._flushing:  # the thread's flush and close()'s, one at a time
            while records := self._take():
                try:
                    written += self.store.write(records)
                except Exception as exc:  # a full disk, a lock held too long, a broken file...
                    self.failed += len(records)
                    self._warn(exc)
                    break
            self.written += written
            self._warn(None)  # rows a full queue refused, if any
        return written

    def close(self, timeout: float = 2 * BUSY_TIMEOUT) -> None:
        """Stop the writer thread after it wrote what was queued (the app's shutdown); what
        a failed write leaves is dropped rather than retried."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            thread.join(timeout)
        self.flush()  # what came after the thread's last flush, or with no thread at all
        with self._flushing:
            self.failed += len(self._take(len(self._pending)))
            self._warn(None, force=True)  # the last word on what was lost, if anything

    def _take(self, most: int | None = None) -> list[RequestRecord]:
        """Up to ``most`` (``batch``) queued records, oldest first, off the queue."""
        records: list[RequestRecord] = []
        with contextlib.suppress(IndexError):
            for _ in range(self.batch if most is None else most):
                records.append(self._pending.popleft())
        return records

    def _start(self) -> None:
        """Start this process's writer (a forked child drops the parent's queue)."""
        if self._pid and self._pid != os.getpid():
            self._pending.clear()
        self._pid = os.getpid()
        self._stop.clear()
        try:
            self._thread = threading.Thread(
                target=self._run, name="stockpipe-requestlog", daemon=True
            )
            self._thread.start()
        except RuntimeError as exc:  # no thread to be had: rows wait for close()
            log.warning("request log writer not started (%s)", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()
        self.flush()

    def _warn(self, exc: Exception | None, force: bool = False) -> None:
        """One warning a minute at most (unless ``force``), counting the rows dropped since
        the last one."""
        lost = self.failed + self.overflowed - self._reported
        now = time.monotonic()
        if lost <= 0 or (now - self._warned_at < WARN_EVERY and not force):
            return
        self._warned_at, self._reported = now, self._reported + lost
        why = f"{type(exc).__name__}: {exc}" if exc else "failed writes or a full queue"
        log.warning("request log %s: %d rows dropped (%s)", self.store.path, lost, why)
