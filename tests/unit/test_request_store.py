"""The service's request log (issue 24 item 4): its table in the prediction log's SQLite file,
kept to the newest ``max_rows`` rows (and so to a bounded file), and the buffered writer the
middleware hands each request to: flushed by its thread on a tick, sooner on a full batch, and
on close; a failing write (a real lock held by another connection, a path SQLite cannot open)
never raises and is warned about once a minute at most. Real SQLite files in tmp_path."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from support import wait_until

from pipeline.serving.requeststore import BufferedRequests, RequestRecord, RequestStore

T0 = dt.datetime(2026, 12, 1, 9, 30, 0, 123456, tzinfo=dt.UTC)


def records(n: int, first: int = 0, endpoint: str = "/predict") -> list[RequestRecord]:
    """``n`` records, one a second from T0 + ``first`` seconds, ids ``r<k>``."""
    return [
        RequestRecord(
            at=T0.timestamp() + k,
            endpoint=endpoint,
            method="POST",
            status=200 if k % 10 else 503,
            latency_ms=1.0 + k % 7,
            request_id=f"r{k}",
            model_version="3",
            tickers=k % 4 or None,
        )
        for k in range(first, first + n)
    ]


def stored(path: Path, column: str = "request_id") -> list[object]:
    """One column of every row, in rowid order, read with a plain sqlite3 connection."""
    with sqlite3.connect(path) as con:
        return [row[0] for row in con.execute(f"SELECT {column} FROM requests ORDER BY rowid")]


def pages(path: Path) -> int:
    """The database file's size in pages."""
    with sqlite3.connect(path) as con:
        return int(con.execute("PRAGMA page_count").fetchone()[0])


def test_rows_read_back_typed_and_reading_creates_nothing(tmp_path: Path) -> None:
    store = RequestStore(tmp_path / "w.log.sqlite")
    assert store.since(T0).height == 0 and not (tmp_path / "w.log.sqlite").exists()
    assert store.write(records(5)) == 5
    got = RequestStore(store.path).since(T0 + dt.timedelta(seconds=2))  # another connection
    assert got.columns == ["at", "endpoint", "method", "status", "latency_ms"]
    assert got["at"].to_list() == [
        (T0 + dt.timedelta(seconds=k)).replace(tzinfo=None) for k in (2, 3, 4)
    ]  # microseconds kept, UTC
    assert got["latency_ms"].to_list() == [3.0, 4.0, 5.0]
    assert stored(tmp_path / "w.log.sqlite", "tickers") == [None, 1, 2, 3, None]
    assert stored(tmp_path / "w.log.sqlite", "at")[0] == "2026-12-01 09:30:00.123456"
    with sqlite3.connect(tmp_path / "w.log.sqlite") as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        with pytest.raises(sqlite3.IntegrityError):  # STRICT: a wrong type is refused
            con.execute(
                "INSERT INTO requests VALUES ('t', '/x', 'GET', 'ok', 1.0, 'i', NULL, NULL)"
            )


def test_the_table_keeps_the_newest_rows_and_the_file_stops_growing(tmp_path: Path) -> None:
    path = tmp_path / "w.log.sqlite"
    store = RequestStore(path, max_rows=1000)
    counts, sizes = [], []
    for batch in range(40):  # 20,000 rows through a table of 1,000
        store.write(records(500, first=batch * 500))
        counts.append(store.count())
        sizes.append(pages(path))
    assert counts[0] == 500 and set(counts[1:]) == {1000}  # never more after a commit
    assert stored(path) == [f"r{k}" for k in range(19_000, 20_000)]  # the newest, in order
    # Deleted pages are reused: 10 times the rows since batch 4, (almost) no new page.
    assert sizes[-1] <= sizes[3] + 3, sizes


def test_the_bound_holds_with_a_batch_larger_than_the_table(tmp_path: Path) -> None:
    store = RequestStore(tmp_path / "w.log.sqlite", max_rows=50)
    store.write(records(120))
    assert stored(tmp_path / "w.log.sqlite") == [f"r{k}" for k in range(70, 120)]


def test_the_writer_flushes_on_its_tick_on_a_full_batch_and_on_close(tmp_path: Path) -> None:
    store = RequestStore(tmp_path / "tick.sqlite")
    ticking = BufferedRequests(store, flush_seconds=0.05)
    for r in records(10):
        ticking.add(r)
    wait_until(lambda: store.count() == 10, 10.0, "the thread to flush on its tick")
    ticking.close()

    batched = BufferedRequests(RequestStore(tmp_path / "batch.sqlite"), 3600.0, batch=5)
    for r in records(5):
        batched.add(r)
    wait_until(lambda: batched.written == 5, 10.0, "a full batch to wake the writer")
    for r in records(3, first=5):  # below a batch, long before the tick
        batched.add(r)
    batched.close()  # the app's shutdown writes what waits
    assert stored(tmp_path / "batch.sqlite") == [f"r{k}" for k in range(8)]
    batched.add(records(1, first=8)[0])  # a record after close starts the writer again
    batched.close()
    assert batched.written == 9


def test_a_locked_file_drops_the_batch_warns_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "w.log.sqlite"
    store = RequestStore(path, busy_timeout=0.05)
    store.write(records(1))
    writer = BufferedRequests(store, flush_seconds=3600.0)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's writer, holding the lock
    caplog.set_level(logging.WARNING, "pipeline.serving.requeststore")
    for k in range(3):
        writer.add(records(1, first=10 + k)[0])
        assert writer.flush() == 0  # dropped, not raised
    assert (writer.failed, writer.written) == (3, 0)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "1 rows dropped" in warnings[0] and "locked" in warnings[0]
    holder.rollback()
    holder.close()
    writer.add(records(1, first=20)[0])
    assert writer.flush() == 1 and stored(path) == ["r0", "r20"]  # writes resume
    writer.close()


def test_an_unopenable_path_and_a_full_queue_never_fail_a_request(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.sqlite"
    folder.mkdir()  # SQLite cannot open a folder
    writer = BufferedRequests(RequestStore(folder), flush_seconds=3600.0, max_pending=4)
    for r in records(6):
        writer.add(r)  # never raises: the last two find the queue full
    assert writer.overflowed == 2
    writer.close()  # the write fails inside: counted, not raised
    assert (writer.written, writer.failed) == (0, 4)


class Recording(RequestStore):
    """The real store, noting the size of every batch written."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.sizes: list[int] = []

    def write(self, records: Sequence[RequestRecord]) -> int:
        self.sizes.append(len(records))
        return super().write(records)


def test_a_backlog_is_written_a_batch_per_transaction(tmp_path: Path) -> None:
    store = Recording(tmp_path / "w.log.sqlite")
    writer = BufferedRequests(store, flush_seconds=3600.0, batch=500)
    for r in records(1200):
        writer.add(r)  # the thread wakes at 500 rows waiting: it and close() share the work
    writer.close()
    assert writer.written == 1200 and store.count() == 1200
    assert max(store.sizes) <= 500  # the write lock is never held for a whole backlog


def test_close_drops_what_a_failed_write_leaves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "a-folder.sqlite"
    folder.mkdir()
    writer = BufferedRequests(RequestStore(folder), flush_seconds=3600.0, batch=2)
    caplog.set_level(logging.WARNING, "pipeline.serving.requeststore")
    for r in records(5):
        writer.add(r)
    writer.close()  # however the thread's failed flushes and close's own fell, none is kept
    assert (writer.failed, writer.written) == (5, 0)
    assert "rows dropped" in caplog.records[-1].getMessage()
