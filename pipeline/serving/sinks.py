"""Prediction sinks: parquet files written atomically (temp file then rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import polars as pl


class ParquetSink:
    """Writes predictions to one parquet file; a crash never leaves a half-written file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, frame: pl.DataFrame) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".parquet.tmp")
        os.close(fd)
        try:
            frame.write_parquet(tmp)
            Path(tmp).replace(self.path)
        finally:
            if Path(tmp).exists():
                Path(tmp).unlink()
        return self.path
