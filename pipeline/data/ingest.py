"""Use cases that bring data in: fetch or import -> validate -> snapshot -> warehouse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.data.snapshots import Snapshot, SnapshotStore
from pipeline.domain import PriceSource, PriceStore


@dataclass(frozen=True)
class IngestResult:
    snapshots: list[Snapshot]
    rows: int
    tickers: tuple[str, ...]


def ingest(
    source: PriceSource,
    snapshots: SnapshotStore,
    store: PriceStore,
    kind: str,
    params: dict[str, Any],
) -> IngestResult:
    """Validate first (raises before anything is written), then snapshot, then upsert."""
    batch = source.load()
    snaps = snapshots.record(batch, kind, params)
    rows = store.upsert(batch)
    return IngestResult(snaps, rows, batch.tickers)
