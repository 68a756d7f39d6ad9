"""Prediction sinks: parquet or CSV files written atomically (temp file then rename)."""

from __future__ import annotations

from collections.abc import Callable
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
        return _write(self.path, lambda tmp: frame.write_parquet(tmp, compression=self.compression))


class CsvSink:
    """Writes a frame to one CSV file (a header, ISO dates and times, empty for null)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, frame: pl.DataFrame) -> Path:
        """Write ``frame`` to the sink's path, atomically as every sink."""
        return _write(self.path, frame.write_csv)


# The file formats a command that exports a table chooses from by the output's suffix.
SINKS: dict[str, Callable[[Path], ParquetSink | CsvSink]] = {
    ".parquet": ParquetSink,
    ".csv": CsvSink,
}


def file_sink(path: Path) -> ParquetSink | CsvSink:
    """The sink writing ``path`` in the format its suffix names (case does not matter);
    OutputError (exit 2) for any other suffix."""
    make = SINKS.get(path.suffix.lower())
    if make is None:
        raise OutputError(
            f"{path} ends in neither {' nor '.join(SINKS)}: the suffix chooses the format "
            f"(e.g. {path.with_suffix('.parquet').name})"
        )
    return make(path)


def _write(path: Path, write: Callable[[Path], object]) -> Path:
    try:
        return atomic_write(path, write)
    except OSError as exc:
        # Callers check the path up front; this covers what changed since (disk full...).
        raise OutputError(
            f"cannot write {path} ({exc.strerror or exc}); choose another output path "
            "or fix its permissions"
        ) from exc
