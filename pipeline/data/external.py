"""Calls into third-party data libraries, made fit for a command line.

Their chatter stays out of the user's terminal and goes to our log at DEBUG instead.
Libraries we call talk in four ways: ``print`` to ``sys.stdout``/``sys.stderr`` (yfinance),
their own loggers (yfinance, urllib3, peewee, curl_cffi), ``warnings`` (pandas deprecations)
and, below Python, writes to file descriptors 1 and 2 (a Rust panic in polars prints its
message and a backtrace there before Python sees the exception). ``quiet`` captures all four
for one call and replays them to a logger at DEBUG, so ``--log-level DEBUG`` still shows them.

Their failures on damaged files become one DataError: a byte-corrupt parquet file makes
polars raise ComputeError, InvalidOperationError, an OSError or even a Rust
``PanicException`` (a BaseException, so ``except Exception`` misses it).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from pipeline.errors import DataError

LIBRARY_LOGGERS = ("yfinance", "urllib3", "peewee", "curl_cffi")
_UNREADABLE = (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException)
log = logging.getLogger(__name__)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The start of an exception's message: a panic nests whole backtraces in its own."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Collect(logging.Handler):
    """Keeps a library's records as text, whatever their level, to be logged after the block
    (logging inside it would write to the very descriptors being captured)."""

    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.NOTSET)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.name} {record.levelname}: {record.getMessage()}")


@contextlib.contextmanager
def _library_loggers(names: tuple[str, ...], sink: list[str]) -> Iterator[None]:
    handler = _Collect(sink)
    saved = []
    for name in names:
        lib = logging.getLogger(name)
        saved.append((lib, lib.handlers[:], lib.propagate))
        # Not propagating keeps the records away from the root handler that prints them.
        lib.handlers[:] = [handler]
        lib.propagate = False
    try:
        yield
    finally:
        for lib, handlers, propagate in saved:
            lib.handlers[:] = handlers
            lib.propagate = propagate


@contextlib.contextmanager
def _descriptors(sink: io.StringIO) -> Iterator[None]:
    """Point fds 1 and 2 at a temporary file for the block; its text goes to ``sink``."""
    saved: list[tuple[int, int]] = []
    try:
        for fd in (1, 2):
            saved.append((fd, os.dup(fd)))
    except OSError:  # a daemon without stdout/stderr: nothing to capture
        for _, copy in saved:
            os.close(copy)
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        for stream in (sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
        for fd, _ in saved:
            os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            tmp.seek(0)
            sink.write(tmp.read().decode("utf-8", errors="replace"))


@contextlib.contextmanager
def quiet(target: logging.Logger, loggers: tuple[str, ...] = LIBRARY_LOGGERS) -> Iterator[None]:
    """Run the block with library output captured and logged to ``target`` at DEBUG."""
    out, err, low = io.StringIO(), io.StringIO(), io.StringIO()
    records: list[str] = []
    caught: list[warnings.WarningMessage] = []
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            _library_loggers(loggers, records),
            _descriptors(low),
        ):
            warnings.simplefilter("always")
            yield
    finally:
        for record in records:
            target.debug("captured log %s", record)
        for name, text in (("stdout", out), ("stderr", err), ("fd output", low)):
            for line in text.getvalue().splitlines():
                if line.strip():
                    target.debug("captured %s: %s", name, line)
        for w in caught:
            target.debug("captured warning %s: %s", w.category.__name__, w.message)


def read_parquet(path: Path, what: str, fix: str) -> pl.DataFrame:
    """``pl.read_parquet(path)``, or DataError "<what> <path> is ...; <fix>"."""
    if not path.exists():
        raise DataError(f"{what} {path} is missing; {fix}")
    if not path.is_file():
        raise DataError(f"{what} {path} is not a file; {fix}")
    try:
        with quiet(log):
            return pl.read_parquet(path)
    except _UNREADABLE as exc:
        kind = "empty (0 bytes)" if _size(path) == 0 else "not a readable parquet file"
        raise DataError(
            f"{what} {path} is {kind} ({type(exc).__name__}: {first_line(exc)}); {fix}"
        ) from exc


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
