"""Use cases that bring data in: fetch or import -> validate -> snapshot -> warehouse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.atomic import ensure_writable_dir
from pipeline.data.snapshots import Snapshot, SnapshotStore
from pipeline.data.warehouse_errors import WarehouseCorruptError
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
    # An unwritable snapshot folder is known now: fail before a download or a long read.
    ensure_writable_dir(snapshots.root, "snapshot folder (data.raw_dir)")
    snapshots.entries()  # a damaged manifest is reported before any work, too
    batch = source.load()
    snaps = snapshots.record(batch, kind, params)
    try:
        rows = store.upsert(batch)
    except WarehouseCorruptError as exc:
        kept = ", ".join(s.id for s in snaps)
        raise WarehouseCorruptError(
            f"{exc}. The new data is kept as snapshot(s) {kept}, so the rebuild loads it too"
        ) from exc
    return IngestResult(snaps, rows, batch.tickers)
