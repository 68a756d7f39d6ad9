"""One `cycle` per project at a time: a non-blocking ``flock`` on ``<records_dir>/.lock``.

Why a kernel lock on an open file, not a lock *file* whose existence is the lock: the kernel
drops an ``flock`` when its descriptor closes, and a process killed with ``kill -9`` (or by the
OOM killer, or a power cut) closes every descriptor it had. So a killed cycle never leaves a
stale lock for the next evening to trip over, and nobody has to decide whether a leftover pid
is still alive. The file itself is never deleted: unlinking it while another process waits
on it would let two processes lock two different inodes of the same name.

Non-blocking, because two cycles of one evening must not queue up behind each other: the
second one exits at once with ``EXIT_BUSY`` (and its own message), doing nothing; cron's next
run, or a person, decides what comes next. The holder writes who it is into the file (pid,
host, start time) for that message; the lock is the ``flock``, never this text.

Python opens files non-inheritable (PEP 446), so a child process the cycle starts does not
keep the lock alive after the cycle itself dies.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import EXIT_BUSY, StockpipeError

LOCK_NAME = ".lock"


class CycleBusyError(StockpipeError):
    """Another cycle of the same project holds the lock: this one did nothing (exit 5)."""

    exit_code = EXIT_BUSY


@contextmanager
def cycle_lock(path: Path) -> Iterator[None]:
    """Hold the project's cycle lock at ``path`` for the block, or raise CycleBusyError at
    once when another process holds it (see the module docstring)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies, as to any file
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CycleBusyError(
                f"another cycle of this project is running ({_holder(path)}; lock {path}): "
                "this one did nothing. Wait for it to finish, then run again if needed"
            ) from None
        _claim(fd)
        yield
    finally:
        os.close(fd)  # releases the lock; a kill -9 releases it the same way


def _claim(fd: int) -> None:
    """Write who holds the lock into the file, for the message of the cycle that finds it
    held."""
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode(), 0)


def _holder(path: Path) -> str:
    """The holder's own description, or a placeholder while it has not written it yet."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "holder not known yet"
