"""The service's hold on the warehouse while it logs predictions.

Opening the DuckDB file, and closing it (a checkpoint), cost ~40-70 ms on a busy 2-core
machine, against ~6 ms for one insert and commit on an open connection. A commit is durable
(DuckDB syncs its write-ahead log), so the service keeps its connection between flushes and
gives the file back only when it is not needed or someone else is waiting for it:

* when no prediction arrived for ``idle`` seconds (``GroupWriter`` calls ``release``);
* when another service process waits for it (a ``ProcessLock`` says so: two services on one
  warehouse), once this one has held it ``MIN_HOLD`` seconds, so they take turns;
* after ``MAX_HOLD`` seconds of constant load, pausing ``PAUSE`` seconds before the next open:
  a `score` run or `monitor` retries the file every 0.2 s and finds it free within that pause.

DuckDB lets one process open a file for writing at a time; the ``ProcessLock`` queues the
service processes on an OS file lock, which wakes the next one as soon as the file is free
(the workers of one `serve --workers N` need none: they log through ``LogServer``).
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import duckdb
import polars as pl

from pipeline.data.warehouse import UPSERTS, DuckDBStore
from pipeline.domain import LOG_COLUMNS

MIN_HOLD = 0.05  # seconds a worker keeps the file before handing it to another waiting one
MAX_HOLD = 5.0  # seconds of constant load after which other jobs get a turn
PAUSE = 0.3  # seconds the file stays free then: more than the warehouse's 0.2 s retry


class ProcessLock:
    """An exclusive ``flock`` shared by the service's processes, and a way to see that
    another one is waiting for it (waiters hold a shared lock on a second file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.want = path.with_name(path.name + ".want")
        self._held: IO[str] | None = None

    def acquire(self) -> None:
        """Wait for the lock (blocking, woken as soon as it is released)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.want.open("a") as want:
            fcntl.flock(want, fcntl.LOCK_SH)  # "I am waiting", seen by ``contended``
            handle = self.path.open("a")
            fcntl.flock(handle, fcntl.LOCK_EX)
        self._held = handle

    def release(self) -> None:
        if self._held is not None:
            self._held.close()  # closing the file releases the flock (a crash does too)
            self._held = None

    def contended(self) -> bool:
        """True when another process is waiting in ``acquire``."""
        with self.want.open("a") as want:
            try:
                fcntl.flock(want, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(want, fcntl.LOCK_UN)
            return False


def writer_lock(warehouse: Path | str) -> ProcessLock | None:
    """The lock the service's processes share for ``warehouse`` (none for ``:memory:``)."""
    if str(warehouse) == ":memory:":
        return None
    path = Path(warehouse)
    return ProcessLock(path.with_name(path.name + ".writer.lock"))


class HeldWarehouse:
    """A ``PredictionLog`` on ``store`` that keeps its connection between writes (see the
    module docstring). Used by one thread at a time: the ``GroupWriter``'s flusher."""

    def __init__(self, store: DuckDBStore, lock: ProcessLock | None = None) -> None:
        self.store = store
        self.lock = lock
        self._stack: ExitStack | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._opened = 0.0
        self._free_until = 0.0  # after a MAX_HOLD release: not before this monotonic time

    def record(self, frame: pl.DataFrame) -> int:
        """Insert or replace ``frame`` in the prediction log in one committed transaction."""
        con = self._connection()
        try:
            con.execute("BEGIN TRANSACTION")
            con.register("incoming", frame.select(LOG_COLUMNS).to_arrow())
            for statement in UPSERTS["predictions"]:
                con.execute(statement)
            con.unregister("incoming")
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            self.release()  # a broken connection is not reused: the next write reopens
            raise
        self._maybe_yield()
        return frame.height

    def release(self) -> None:
        """Close the connection (DuckDB checkpoints) and let other processes have the file."""
        try:
            if self._stack is not None:
                self._stack.close()
        finally:
            self._stack = self._con = None
            if self.lock is not None:
                self.lock.release()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is not None:
            return self._con
        time.sleep(max(0.0, self._free_until - time.monotonic()))
        if self.lock is not None:
            self.lock.acquire()
        stack = ExitStack()
        try:
            # The store's own session: schema set up, errors named as everywhere else.
            self._con = stack.enter_context(self.store.session())
        except BaseException:
            stack.close()
            if self.lock is not None:
                self.lock.release()
            raise
        self._stack, self._opened = stack, time.monotonic()
        return self._con

    def _maybe_yield(self) -> None:
        held = time.monotonic() - self._opened
        if held >= MAX_HOLD:
            self.release()
            self._free_until = time.monotonic() + PAUSE
        elif held >= MIN_HOLD and self.lock is not None and self.lock.contended():
            self.release()
