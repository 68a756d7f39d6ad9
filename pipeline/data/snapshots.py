"""Immutable raw snapshots: every fetch or import is kept as parquet with a manifest entry.

Layout: ``<raw_dir>/<source>/<TICKER>/<UTC timestamp>.parquet`` plus ``<raw_dir>/manifest.jsonl``.
Files are written to a temporary name and renamed, and the manifest is rewritten the same way,
so an interrupted fetch never leaves a half file or a manifest entry without its data. The
manifest is read, extended and rewritten under an exclusive lock (``manifest.jsonl.lock``), so
concurrent imports, fetches and trains never drop each other's entries or store the same
content twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.atomic import atomic_write, atomic_write_text, file_lock
from pipeline.data.external import read_parquet
from pipeline.domain import PRICE_COLUMNS, PriceBatch
from pipeline.errors import DataError
from pipeline.ordering import by_ticker_date


@dataclass(frozen=True)
class Snapshot:
    """One immutable raw file of one ticker."""

    id: str
    ticker: str
    source: str
    path: str  # relative to the raw dir
    sha256: str  # of the canonical content, so identical data is never stored twice
    rows: int
    first_date: str
    last_date: str
    created_at: str
    params: dict[str, Any] = field(default_factory=dict)


def content_sha256(frame: pl.DataFrame) -> str:
    """Hash of the canonical columns as CSV text: stable across parquet writers."""
    text = frame.select(PRICE_COLUMNS).sort("ticker", "date").write_csv()
    return hashlib.sha256(text.encode()).hexdigest()


class SnapshotStore:
    """Writes, lists and reads raw snapshots under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest = root / "manifest.jsonl"

    def entries(self) -> list[Snapshot]:
        """Every manifest entry in file order ([] before the first fetch or import)."""
        if not self.manifest.exists():
            return []
        try:
            text = self.manifest.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(
                f"snapshot manifest {self.manifest} cannot be read ({exc}); restore it from a "
                "backup"
            ) from exc
        return [
            _entry(self.manifest, number, line)
            for number, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]

    def require_entries(self) -> list[Snapshot]:
        """Like ``entries`` but a missing or empty manifest is an error."""
        snaps = self.entries()
        if not snaps:
            state = "has no entries" if self.manifest.exists() else "does not exist"
            files = sum(1 for _ in self.root.rglob("*.parquet")) if self.root.is_dir() else 0
            # Files without a manifest cannot be trusted blindly: it holds their hashes.
            fix = (
                f"{files} snapshot file(s) under {self.root} are not listed: restore "
                f"{self.manifest.name} from a backup"
                if files
                else "there are no snapshots. Run `stockpipe fetch` or `stockpipe data "
                "import`, or set data.raw_dir to the folder holding manifest.jsonl"
            )
            raise DataError(f"snapshot manifest {self.manifest} {state}: {fix}")
        return snaps

    def record(self, batch: PriceBatch, source: str, params: dict[str, Any]) -> list[Snapshot]:
        """Store each ticker of a validated batch; reuse a snapshot with identical content."""
        # Held from the lookup of identical content to the rename of the new manifest: a
        # second writer reading the old manifest meanwhile would drop this one's entries.
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / f"{self.manifest.name}.lock"):
            return self._record(batch, source, params)

    def _record(self, batch: PriceBatch, source: str, params: dict[str, Any]) -> list[Snapshot]:
        existing = {(s.ticker, s.sha256): s for s in self.entries()}
        now = dt.datetime.now(dt.UTC)
        stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
        out, new = [], []
        for ticker in batch.tickers:
            frame = batch.frame.filter(pl.col("ticker") == ticker)
            digest = content_sha256(frame)
            if (ticker, digest) in existing:
                out.append(existing[(ticker, digest)])
                continue
            rel = f"{source}/{ticker}/{stamp}.parquet"
            atomic_write(self.root / rel, frame.write_parquet)
            snap = Snapshot(
                id=f"{source}/{ticker}/{stamp}",
                ticker=ticker,
                source=source,
                path=rel,
                sha256=digest,
                rows=frame.height,
                first_date=str(frame["date"].min()),
                last_date=str(frame["date"].max()),
                created_at=now.isoformat(),
                params=params,
            )
            out.append(snap)
            new.append(snap)
        if new:
            lines = [json.dumps(asdict(s), default=str) for s in [*self.entries(), *new]]
            atomic_write_text(self.manifest, "\n".join(lines) + "\n")
        return out

    def get(self, snapshot_id: str) -> Snapshot:
        for snap in self.entries():
            if snap.id == snapshot_id:
                return snap
        raise DataError(f"{self.manifest}: no snapshot '{snapshot_id}' (see `stockpipe data list`)")

    def latest(self, tickers: tuple[str, ...]) -> list[Snapshot]:
        """The newest snapshot of each ticker."""
        snaps = self.entries()
        out = []
        for ticker in tickers:
            mine = [s for s in snaps if s.ticker == ticker]
            if not mine:
                raise DataError(
                    f"{self.root}: no snapshot of {ticker}; run `stockpipe fetch` or "
                    "`stockpipe data import`"
                )
            out.append(max(mine, key=lambda s: s.created_at))
        return out

    def read(self, snap: Snapshot) -> pl.DataFrame:
        """One snapshot's rows, checked against its manifest sha256."""
        path = self.root / snap.path
        fix = (
            f"restore the file from a backup, or delete the line of '{snap.id}' from "
            f"{self.manifest} and import or fetch that data again"
        )
        frame = read_parquet(path, f"snapshot {snap.id}: file", fix)
        missing = [c for c in PRICE_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"snapshot {snap.id}: file {path} lacks column(s) {missing}; {fix}")
        if content_sha256(frame) != snap.sha256:
            raise DataError(
                f"{path}: content does not match its manifest sha256 (tampered?) for snapshot "
                f"{snap.id}; {fix}"
            )
        return frame

    def load(self, snaps: list[Snapshot]) -> PriceBatch:
        """The given snapshots as one batch; its sha256 fingerprints their hashes."""
        frames = [self.read(snap) for snap in snaps]
        frame = by_ticker_date(pl.concat(frames))
        digest = hashlib.sha256("".join(s.sha256 for s in snaps).encode()).hexdigest()
        return PriceBatch(frame, ",".join(s.id for s in snaps), digest, tuple(s.id for s in snaps))


def _entry(manifest: Path, number: int, line: str) -> Snapshot:
    try:
        return Snapshot(**json.loads(line))
    except (ValueError, TypeError) as exc:  # not JSON, not an object, or missing keys
        raise DataError(
            f"snapshot manifest {manifest}, line {number}, is not a snapshot entry ({exc}): "
            f"{line[:80]!r}. Restore the manifest from a backup, or delete that line"
        ) from exc


class SnapshotSource:
    """A PriceSource over snapshots: pinned ids, or the latest per configured ticker."""

    def __init__(
        self, store: SnapshotStore, tickers: tuple[str, ...] | None, pinned: str | None = None
    ) -> None:
        self.store = store
        self.tickers = tickers
        self.pinned = pinned

    def load(self) -> PriceBatch:
        if self.pinned:
            snaps = [self.store.get(s.strip()) for s in self.pinned.split(",")]
        elif self.tickers:
            snaps = self.store.latest(self.tickers)
        else:
            raise DataError("data.yaml: source 'snapshots' needs 'tickers' or a --snapshot id")
        return self.store.load(snaps)
