"""What the cycle talks to: its ports, and the small typed facts they hand back.

The cycle is an orchestration of use cases that already exist (ingest, replay, monitor,
train); its ports are those steps plus the state its decisions read (the registry, the
prediction log, the records). The composition root (``pipeline.bootstrap.cycle_ports``)
maps configuration to adapters; unit tests give hand-written fakes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.domain import Tracker
from pipeline.operations.record import RecordStore, Retrained
from pipeline.operations.schedule import LastRetrain


@dataclass(frozen=True)
class Champion:
    """One horizon's champion: its registered model and version (None: no champion yet)."""

    horizon: int
    name: str
    version: str | None

    @property
    def uri(self) -> str:
        """The version itself, not the alias: a champion moving meanwhile changes nothing."""
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class Ingested:
    """What the ingest step brought in, and every trading date the data now has."""

    said: str
    dates: tuple[dt.date, ...]
    new_dates: int  # trading dates beyond the last one the warehouse held before
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Scored:
    """One replay: rows logged with source ``cycle`` and the trading dates they cover."""

    rows: int
    dates: int


@dataclass(frozen=True)
class Watched:
    """One horizon's monitor verdict."""

    horizon: int
    version: str | None
    status: str


class Ingest(Protocol):
    """The evening's prices in: read and validate first, then keep and store them."""

    def validate(self) -> None:
        """Read (or download) and validate the input, writing nothing: a bad file stops the
        cycle before the tracking store is reached or anything is written."""
        ...

    def __call__(self) -> Ingested:
        """Keep the validated input as snapshots and upsert it into the warehouse."""
        ...


class Steps(Protocol):
    """The evening's work on the data as of one date (``CyclePorts.steps`` builds them)."""

    def score(self, start: dt.date, end: dt.date, model_uri: str) -> Scored:
        """Replay ``model_uri`` over the trading dates in ``[start, end]``; log the rows with
        source ``cycle``."""
        ...

    def monitor(self) -> list[Watched]:
        """`stockpipe monitor` of every horizon's champion, its files in the usual folder."""
        ...

    def retrain(self) -> list[Retrained]:
        """`stockpipe train`: the competition, the gate, the registration."""
        ...


class Models(Protocol):
    """The registry, as far as the cycle's decisions read it."""

    def champions(self) -> dict[int, Champion]:
        """Every configured horizon's champion (version None where there is none)."""
        ...

    def last_retrain(self) -> LastRetrain:
        """The primary horizon's newest version, promoted or not, and its data's end."""
        ...

    def trained_through(self, champion: Champion) -> dt.date | None:
        """The last trading date of the data ``champion`` was trained on (None: unknown)."""
        ...


class ScoredDates(Protocol):
    """The prediction log, as far as the cycle's decisions read it."""

    def last_scored(self, champion: Champion) -> dt.date | None:
        """The newest as-of date logged for this version in its track record (None: never)."""
        ...


@dataclass(frozen=True, kw_only=True)
class CyclePorts:
    """Everything the cycle talks to; ``steps`` builds the steps on the data cut at an as-of
    date, which is known only once the data is in."""

    lock: Callable[[], AbstractContextManager[object]]
    tracker: Tracker
    ingest: Ingest
    steps: Callable[[dt.date], Steps]
    models: Models
    scored: ScoredDates
    records: RecordStore
