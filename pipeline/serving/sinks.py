"""Prediction sinks: parquet files written atomically (temp file then rename)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipeline.atomic import OutputError, atomic_write


class ParquetSink:
    """Writes predictions to one parquet file; a crash never leaves a half-written file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, frame: pl.DataFrame) -> Path:
        """Write ``frame`` to the sink's path (mode from the umask, like any new file)."""
        try:
            return atomic_write(self.path, frame.write_parquet)
        except OSError as exc:
            # Callers check the path up front; this covers what changed since (disk full...).
            raise OutputError(
                f"cannot write {self.path} ({exc.strerror or exc}); choose another output path "
                "or fix its permissions"
            ) from exc
