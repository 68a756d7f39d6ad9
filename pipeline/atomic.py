"""Atomic file writes and up-front writability checks: a job completes or leaves no trace.

Every file stockpipe writes goes to a temporary name in the target folder and is renamed into
place, so a crash or a kill never leaves half a file. Files get the permissions the user's
umask gives a new file (``mkstemp`` alone would make them 0600).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import StockpipeError


class OutputError(StockpipeError):
    """An output path cannot be written (checked before any work is done)."""


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(0o666 & ~_umask())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); other processes wait.

    For read-modify-write of a shared file (the snapshot manifest): an atomic rename keeps
    each write whole, but two writers that read the same old version would each drop the
    other's change. The kernel drops the lock when the descriptor closes, so a killed holder
    never leaves a stale lock behind (unlike a lock *file* whose existence is the lock). An
    existing folder is locked as it is, creating nothing in it.
    """
    flags = os.O_RDONLY if path.is_dir() else os.O_RDWR | os.O_CREAT
    fd = os.open(path, flags, 0o666 & ~_umask())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def ensure_writable(path: Path, what: str = "output") -> Path:
    """Raise OutputError now if ``path`` could not be created or replaced later.

    Nothing is created: the nearest existing ancestor must be a writable folder, and an
    existing ``path`` must be a file (a rename replaces it, so its own mode does not matter).
    """
    path = path.expanduser().resolve()
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory; give a file path")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{what} {path}: {folder} is a file, not a folder")
    _probe(folder, f"{what} {path}: folder {folder}")
    return path


def _probe(folder: Path, label: str) -> None:
    # os.access says yes to root on any folder, and to everyone on some read-only mounts:
    # only creating a file tells. The probe is anonymous and gone when the block ends.
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(
            f"{label} is not writable ({exc.strerror}); choose another path or fix its permissions"
        ) from exc


def ensure_writable_dir(path: Path, what: str = "output folder") -> Path:
    """Like ``ensure_writable`` for a folder the job will create or fill."""
    path = path.expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file, not a folder")
    if path.is_dir():
        _probe(path, f"{what} {path}")
        return path
    ensure_writable(path, what)
    return path
