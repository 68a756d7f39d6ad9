"""Where the numbered SQL files live: shared by the warehouse and the prediction log.

A module of its own so that both stores read ``sql/`` without importing each other (the
warehouse imports the log, so the log cannot import the warehouse).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sql_dir() -> Path:
    """The ``sql/`` folder: next to the package in a checkout, or packaged as data."""
    here = Path(__file__).resolve().parents[2] / "sql"
    if here.is_dir():
        return here
    return Path(str(resources.files("pipeline") / "sql"))
