"""Helpers for tests of damaged or busy stored files (real files, real processes)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support import SAMPLE

from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore

_HOLD = "import duckdb,sys; c=duckdb.connect(sys.argv[1]); print('ready', flush=True); input()"


def real_warehouse(path: Path) -> bytes:
    """A real warehouse holding the NVDA sample; returns its bytes."""
    DuckDBStore(path).upsert(FileSource(SAMPLE / "NVDA.csv").load())
    return path.read_bytes()


@contextmanager
def held_open(path: Path) -> Iterator[Path]:
    """``path`` (a DuckDB file) opened by another process, so its lock is taken, until exit."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ready"
        yield path
    finally:
        holder.communicate(b"\n", timeout=30)
