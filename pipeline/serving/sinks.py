"""Prediction sinks: parquet files written atomically (temp file then rename)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from pipeline.atomic import OutputError, atomic_write

if TYPE_CHECKING:
    from polars._typing import ParquetCompression


class ParquetSink:
    """Writes a frame to one parquet file; a crash never leaves a half-written file.

    ``compression`` is Polars' codec name. zstd (the default) makes the smallest files; the
    feature frame (40-odd float columns, which barely compress) is written with lz4: on 2.5M
    rows 1.05 s instead of 1.5 s, for a file 6% larger.
    """

    def __init__(self, path: Path, compression: ParquetCompression = "zstd") -> None:
        self.path = path
        self.compression: ParquetCompression = compression

    def write(self, frame: pl.DataFrame) -> Path:
        """Write ``frame`` to the sink's path (mode from the umask, like any new file)."""
        try:
            return atomic_write(
                self.path, lambda tmp: frame.write_parquet(tmp, compression=self.compression)
            )
        except OSError as exc:
            # Callers check the path up front; this covers what changed since (disk full...).
            raise OutputError(
                f"cannot write {self.path} ({exc.strerror or exc}); choose another output path "
                "or fix its permissions"
            ) from exc
