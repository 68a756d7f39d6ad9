"""What a DuckDB error about the warehouse file means, as a message the user can act on.

Waiting helps only when another process holds the lock; a truncated, overwritten or empty
file, a folder, or a path without permission fails at once with the fix in the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import duckdb

from pipeline.data.external import first_line
from pipeline.errors import DataError

REBUILD_HINT = (
    "its prices are a cache of your raw snapshots: run `stockpipe data rebuild` to rebuild "
    "them into a new file, which keeps the prediction log (the old file is moved aside)"
)


class WarehouseCorruptError(DataError):
    """The warehouse file exists but is not a readable DuckDB database."""


# What DuckDB raises for a truncated, overwritten or otherwise unreadable file.
_DAMAGED = (
    duckdb.IOException,
    duckdb.InternalException,
    duckdb.FatalException,
    duckdb.SerializationException,
)


def is_locked(exc: duckdb.Error) -> bool:
    """True when another process holds the file's lock (worth waiting for)."""
    return isinstance(exc, duckdb.IOException) and "could not set lock" in str(exc).lower()


def failure(path: Path | str, exc: duckdb.Error) -> DataError | None:
    """Our error for a DuckDB failure caused by the file, or None for anything else (a bug)."""
    text = str(exc)
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        # An empty file is left by a crash while creating it, or by `touch`.
        return WarehouseCorruptError(f"warehouse {path} is empty (0 bytes); " + REBUILD_HINT)
    if Path(path).is_dir():
        return DataError(f"warehouse {path} is a directory; set data.warehouse to a file path")
    for cause in ("Permission denied", "Not a directory", "Read-only file system", "No space"):
        if cause in text:
            return DataError(
                f"warehouse {path} cannot be opened or written ({first_line(exc)}); fix the "
                "path's permissions or free space, or set data.warehouse to another file"
            )
    # A checksum failure is raised as the base duckdb.Error ("Corrupt database file").
    if isinstance(exc, _DAMAGED) or type(exc) is duckdb.Error or "corrupt" in text.lower():
        return WarehouseCorruptError(
            f"warehouse {path} is corrupt or not a DuckDB database ({first_line(exc)}); "
            + REBUILD_HINT
        )
    return None


def raise_for(path: Path | str, exc: duckdb.Error) -> NoReturn:
    """Raise our error for ``exc`` (chained to it), or ``exc`` itself when not about the file."""
    known = failure(path, exc)
    if known is None:
        raise exc
    raise known from exc
