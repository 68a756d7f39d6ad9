"""The cycle record: ``<records_dir>/<as-of>.json``, one evening's work, written as it goes.

The record is rewritten (atomically) after every step, so a cycle killed half-way leaves
the steps it finished and ``status: running``; the rerun for the same as-of date reads it,
reuses what it may (the monitor report) and completes it. ``status: complete`` is written
last, after the cycle's MLflow run: a complete record is what makes a rerun of the same
evening do no work.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.atomic import atomic_write_text
from pipeline.errors import DataError
from pipeline.operations.schedule import RetrainDecision

STEPS = ("ingest", "score", "monitor", "retrain", "record")
_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}\.json$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Step(_Model):
    """What one step did: ``done`` (work), ``nothing`` (nothing to do), ``reused`` (done by an
    earlier, killed run of the same evening), ``skipped`` (not due)."""

    status: Literal["done", "nothing", "reused", "skipped"]
    seconds: float
    said: str
    counts: dict[str, int] = {}


class Retrained(_Model):
    """One horizon's outcome of a retrain: the version it registered and the gate's word."""

    horizon: int
    version: str | None
    promoted: bool
    reason: str


class CycleRecord(_Model):
    """One evening's cycle (see the module docstring). Horizons are keys as text (JSON)."""

    as_of: dt.date
    status: Literal["running", "complete", "failed", "interrupted"]
    started_at: str
    finished_at: str | None = None
    attempts: int = 1
    """Runs that worked on this evening: more than one after a kill or a failure."""
    steps: dict[str, Step] = {}
    champion_before: dict[str, str | None] = {}
    champion_after: dict[str, str | None] = {}
    monitor: dict[str, str] = {}
    """Each horizon's monitor status (ok, warn, alert, insufficient, unavailable)."""
    alerted: bool | None = None
    retrain: RetrainDecision | None = None
    retrained: list[Retrained] = []
    exit_code: int | None = None
    run_id: str | None = None
    """The cycle's MLflow run (tagged ``cycle``)."""
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.status == "complete"


def now() -> str:
    """UTC now, as records write times."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class RecordStore:
    """The records of one project's cycles: one JSON file per as-of date in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, as_of: dt.date) -> Path:
        return self.folder / f"{as_of.isoformat()}.json"

    def read(self, as_of: dt.date) -> CycleRecord | None:
        """The record of ``as_of``, or None when no cycle ran for it."""
        path = self.path(as_of)
        return _parse(path) if path.is_file() else None

    def write(self, record: CycleRecord) -> Path:
        """Replace the record of its as-of date, whole (a kill leaves the previous one)."""
        doc = json.dumps(record.model_dump(mode="json"), indent=2, allow_nan=False)
        return atomic_write_text(self.path(record.as_of), doc + "\n")

    def alert_history(self) -> list[tuple[dt.date, bool]]:
        """(as-of, alerted) of every evening whose monitor step ran, oldest first."""
        return [(r.as_of, r.alerted) for r in self._all() if r.alerted is not None]

    def _all(self) -> Iterator[CycleRecord]:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.iterdir()):
            if _NAME.match(path.name):
                yield _parse(path)


def _parse(path: Path) -> CycleRecord:
    try:
        return CycleRecord.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise DataError(
            f"cycle record {path} cannot be read ({first}); restore it or delete it (the "
            "evening is then run again)"
        ) from exc


class Journal:
    """The evening's record as it grows, rewritten after every change."""

    def __init__(self, store: RecordStore, record: CycleRecord) -> None:
        self.store, self.record = store, record
        store.write(record)

    def update(self, **changes: object) -> None:
        self.record = self.record.model_copy(update=changes)
        self.store.write(self.record)

    def step(self, name: str, step: Step) -> None:
        self.update(steps={**self.record.steps, name: step})

    def fail(self, exc: BaseException) -> None:
        """Record why the run stopped; the rerun completes the evening."""
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        self.update(status=status, finished_at=now(), error=str(exc) or type(exc).__name__)
