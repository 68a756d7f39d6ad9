"""Immutable raw snapshots: every fetch or import is kept as parquet with a manifest entry.

Layout: ``<raw_dir>/<source>/<TICKER>/<UTC timestamp>.parquet`` plus ``<raw_dir>/manifest.jsonl``.
Files are written to a temporary name and renamed, and the manifest is rewritten the same way,
so an interrupted fetch never leaves a half file or a manifest entry without its data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.domain import PRICE_COLUMNS, PriceBatch
from pipeline.errors import DataError


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


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        Path(tmp).replace(path)
    finally:
        Path(tmp).unlink(missing_ok=True)


class SnapshotStore:
    """Writes, lists and reads raw snapshots under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest = root / "manifest.jsonl"

    def entries(self) -> list[Snapshot]:
        if not self.manifest.is_file():
            return []
        lines = self.manifest.read_text(encoding="utf-8").splitlines()
        return [Snapshot(**json.loads(line)) for line in lines if line.strip()]

    def record(self, batch: PriceBatch, source: str, params: dict[str, Any]) -> list[Snapshot]:
        """Store each ticker of a validated batch; reuse a snapshot with identical content."""
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
            _atomic_write(self.root / rel, lambda p, f=frame: f.write_parquet(p))
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
            _atomic_write(
                self.manifest, lambda p: p.write_text("\n".join(lines) + "\n", encoding="utf-8")
            )
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

    def load(self, snaps: list[Snapshot]) -> PriceBatch:
        frames = []
        for snap in snaps:
            path = self.root / snap.path
            frame = pl.read_parquet(path)
            if content_sha256(frame) != snap.sha256:
                raise DataError(f"{path}: content does not match its manifest sha256 (tampered?)")
            frames.append(frame)
        frame = pl.concat(frames).sort("ticker", "date")
        digest = hashlib.sha256("".join(s.sha256 for s in snaps).encode()).hexdigest()
        return PriceBatch(frame, ",".join(s.id for s in snaps), digest, tuple(s.id for s in snaps))


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
