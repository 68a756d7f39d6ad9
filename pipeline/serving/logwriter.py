"""The service's prediction log, written by group commit.

Every ``POST /predict`` must have its rows durably in the warehouse before it answers 200 (a
prediction that cannot be logged is not served). Writing each request's rows in a transaction
of its own costs a DuckDB open, commit and close per request, and DuckDB lets one process
write a file at a time: under load the requests queue on the file, and across the worker
processes of `serve --workers N` the loser of each race sleeps in the warehouse's lock wait.

``GroupWriter`` amortises that: requests hand their rows to one flusher thread and wait; the
flusher writes everything that arrived while the previous flush ran in one transaction, then
wakes exactly the requests whose rows it holds. A request still returns only after its own
rows are committed, and a failed flush fails every request in it (503 upstream). A lone
request is written at once (no linger), so a single client pays no batching delay.

A log that can ``release`` its hold on the warehouse (``pipeline.serving.logsession``) is
told to after ``idle`` seconds without a prediction, so other processes get the file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from pipeline.domain import PredictionLog

log = logging.getLogger(__name__)

# The prediction log's primary key (sql/050_predictions.sql): two requests of one batch
# predicting the same key would make the batch's single INSERT OR REPLACE touch one row twice,
# which DuckDB refuses. The source is in it, so the API's rows never replace `score` rows.
KEY = ("model_name", "model_version", "ticker", "as_of_date", "horizon", "source")
STOP_JOIN_SECONDS = 10.0
IDLE = 0.25  # seconds without a prediction before the log releases the warehouse


@dataclass
class _Batch:
    """The rows of the requests waiting for one flush, and how that flush ended."""

    frames: list[pl.DataFrame] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class GroupWriter:
    """A ``PredictionLog`` whose ``record`` returns once its rows are committed, committing
    the rows of concurrent callers together (see the module docstring)."""

    def __init__(self, log: PredictionLog, idle: float = IDLE) -> None:
        self.log = log
        self.idle = idle
        self._release: Callable[[], None] | None = getattr(log, "release", None)
        self.flushes = 0  # transactions written: fewer than requests under load
        self._cond = threading.Condition()
        self._pending = _Batch()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def record(self, frame: pl.DataFrame) -> int:
        """Log ``frame``; returns its row count once committed, or raises the flush's error."""
        with self._cond:
            batch = self._pending
            batch.frames.append(frame)
            self._start()
            self._cond.notify()
        batch.done.wait()
        if batch.error is not None:
            raise batch.error
        return frame.height

    def close(self) -> None:
        """Write what is pending and stop the flusher (a later ``record`` starts a new one:
        an app may be started again, as tests do)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_JOIN_SECONDS)

    def _start(self) -> None:
        # Lazily, under the lock: an app that never predicts owns no thread.
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="stockpipe-prediction-log", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while (batch := self._next()) is not None:
            self._flush(batch)

    def _next(self) -> _Batch | None:
        """The rows that arrived since the last flush (waiting for some); None to stop."""
        with self._cond:
            if not self._pending.frames and not self._stopping and self._release is not None:
                self._cond.wait(self.idle)  # with the warehouse held: the next comes soon
            if not self._pending.frames:
                self._let_go()  # idle or stopping: other processes may have the file
                while not self._pending.frames and not self._stopping:
                    self._cond.wait()
            if not self._pending.frames:  # stopping, and everything is written
                self._stopping = False
                self._thread = None
                return None
            batch, self._pending = self._pending, _Batch()
            return batch

    def _let_go(self) -> None:
        if self._release is not None:
            try:
                self._release()
            except Exception:  # a failed close loses nothing committed; the next write reopens
                log.exception("prediction log: closing the warehouse failed")

    def _flush(self, batch: _Batch) -> None:
        try:
            rows = pl.concat(batch.frames, how="vertical_relaxed")
            # Later requests win on a shared key, as one-by-one upserts would have had it.
            rows = rows.unique(subset=list(KEY), keep="last", maintain_order=True)
            self.log.record(rows)
            self.flushes += 1
        except BaseException as exc:  # every waiter gets it; none is told it was logged
            batch.error = exc
        finally:
            batch.done.set()
