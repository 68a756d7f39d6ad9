"""The cycle's ingest step and the prices its other steps read.

Every step of one evening reads the same validated batch: the ingest step reads it once (the
data contract, as always), and score, monitor and retrain reuse it, cut at the as-of date.
``file`` mode (and ``--data``) ingests a file as `data import` does: a snapshot (identical
content reuses the one already kept) and an upsert; the file may hold the whole history or
only the new rows (then the steps read the history from the warehouse). ``fetch`` mode
downloads each ticker's bars since its last stored date, keeps what came in as a snapshot,
upserts it, and the steps then read the tickers' whole history back from the warehouse.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl

from pipeline.data.ingest import ingest
from pipeline.data.snapshots import SnapshotStore, content_sha256
from pipeline.domain import PRICE_COLUMNS, PriceBatch, PriceSource, PriceStore
from pipeline.errors import DataError
from pipeline.operations.ports import Ingested


class CachedSource:
    """A PriceSource read and validated once; every later ``load`` returns that batch."""

    def __init__(self, inner: PriceSource) -> None:
        self.inner = inner
        self._batch: PriceBatch | None = None

    def load(self) -> PriceBatch:
        if self._batch is None:
            self._batch = self.inner.load()
        return self._batch


class UpTo:
    """``inner``'s batch without the rows after ``as_of`` (the batch itself when it has
    none), so a cycle for an earlier evening sees only what that evening could have seen."""

    def __init__(self, inner: PriceSource, as_of: dt.date) -> None:
        self.inner, self.as_of = inner, as_of

    def load(self) -> PriceBatch:
        batch = self.inner.load()
        frame = batch.frame.filter(pl.col("date") <= self.as_of)
        if frame.height == batch.frame.height:
            return batch
        # Another content is another input: its own hash, and no snapshot claims it.
        return PriceBatch(frame, f"{batch.source} up to {self.as_of}", content_sha256(frame))


class WarehouseSource:
    """The stored history of some tickers, as one batch (validated when it was stored)."""

    def __init__(self, store: PriceStore, tickers: Callable[[], tuple[str, ...]], label: str):
        self.store, self.tickers, self.label = store, tickers, label

    def load(self) -> PriceBatch:
        names = self.tickers()
        frame = self.store.history(names).collect().select(PRICE_COLUMNS)
        return PriceBatch(frame, f"{self.label} ({', '.join(names)})", content_sha256(frame))


class FileOrStored:
    """What the steps read after a file was ingested: the file itself when it holds every
    stored row of its tickers (the whole history: the model's lineage then names the file,
    as `train --data` would), else the warehouse's history of those tickers (the file held
    only the new rows; the warehouse, upserted from it, has them all)."""

    def __init__(self, file: PriceSource, stored: PriceSource) -> None:
        self.file, self.stored = file, stored

    def load(self) -> PriceBatch:
        batch, stored = self.file.load(), self.stored.load()
        return batch if batch.frame.height == stored.frame.height else stored


class Download(Protocol):
    """A download of some tickers' bars (yfinance), with the parameters its snapshot keeps."""

    params: dict[str, Any]

    def load(self) -> PriceBatch: ...


def stored_through(store: PriceStore, tickers: tuple[str, ...]) -> dict[str, dt.date]:
    """Each ticker's last stored date (tickers with no stored row are left out)."""
    try:
        last = store.history(tickers, rows=1).collect()
    except DataError:  # nothing stored yet for any of them
        return {}
    return dict(last.group_by("ticker").agg(pl.col("date").max()).iter_rows())


def ingested(
    batch: PriceBatch,
    read: PriceBatch,
    before: dict[str, dt.date],
    snapshots: tuple[int, int],
    label: str,
) -> Ingested:
    """What an ingest brought (``batch``; ``snapshots``: new and identical ones), every
    trading date of what the steps will ``read``, and one line saying so."""
    newest_before = max(before.values(), default=None)
    dates = tuple(read.frame.get_column("date").unique().sort().to_list())
    new, reused = snapshots
    span = batch.frame.select(pl.col("date").min().alias("lo"), pl.col("date").max().alias("hi"))
    first, last = span.row(0)
    fresh = sum(1 for d in dates if newest_before is None or d > newest_before)
    said = (
        f"{label}: {batch.frame.height} rows of {', '.join(batch.tickers)}, "
        f"{first}..{last}; {fresh} new trading date(s)"
        f"{f' after {newest_before}' if newest_before else ''}; "
        f"{new} new snapshot(s), {reused} identical (kept as they were)"
    )
    counts = {"rows": batch.frame.height, "snapshots_new": new, "snapshots_reused": reused}
    return Ingested(said=said, dates=dates, new_dates=fresh, counts=counts)


class FileIngest:
    """Ingest a file (``--data``, or ``data.path`` in ``file`` mode), as `data import` does."""

    def __init__(
        self,
        source: CachedSource,
        read: PriceSource,
        snapshots: SnapshotStore,
        store: PriceStore,
        label: str,
    ) -> None:
        self.source, self.read, self.snapshots, self.store = source, read, snapshots, store
        self.label = label

    def validate(self) -> None:
        self.source.load()  # read once, kept for the ingest and the steps

    def __call__(self) -> Ingested:
        batch = self.source.load()
        before = stored_through(self.store, batch.tickers)
        known = {s.id for s in self.snapshots.entries()}
        params = {"path": batch.source, "file_sha256": batch.sha256}
        done = ingest(self.source, self.snapshots, self.store, "file", params)
        new = sum(s.id not in known for s in done.snapshots)
        counts = (new, len(done.snapshots) - new)
        return ingested(batch, self.read.load(), before, counts, self.label)


@dataclass(frozen=True)
class _Fetched:
    """One download, validated (``batch``), with the parameters its snapshot keeps."""

    batch: PriceBatch
    params: dict[str, Any]

    def load(self) -> PriceBatch:
        return self.batch


class FetchIngest:
    """Download each ticker's bars since its last stored date (all of them for a ticker
    never stored), keep them as snapshots, upsert them; then read the whole history back.

    The download starts *at* the last stored date, not after it: Yahoo then always has at
    least that bar (an empty answer means "unreachable" to the source, not "nothing new"),
    and the upsert replaces it with itself.
    """

    def __init__(
        self,
        tickers: Callable[[], tuple[str, ...]],
        download: Callable[[tuple[str, ...], dt.date | None], Download],
        snapshots: SnapshotStore,
        store: PriceStore,
        stored: CachedSource,
    ) -> None:
        self.tickers, self.download = tickers, download
        self.snapshots, self.store, self.stored = snapshots, store, stored
        self._fetched: tuple[tuple[str, ...], dict[str, dt.date], list[_Fetched]] | None = None

    def validate(self) -> None:
        """Every download made and validated, before anything is written."""
        self._downloads()

    def _downloads(self) -> tuple[tuple[str, ...], dict[str, dt.date], list[_Fetched]]:
        """The tickers, their last stored dates and the downloads (made once)."""
        if self._fetched is None:
            names = self.tickers()
            before = stored_through(self.store, names)
            groups: dict[dt.date | None, list[str]] = defaultdict(list)
            for ticker in names:
                groups[before.get(ticker)].append(ticker)
            fetched = []
            for start, group in sorted(groups.items(), key=lambda g: str(g[0])):
                src = self.download(tuple(group), start)
                fetched.append(_Fetched(src.load(), src.params))
            self._fetched = (names, before, fetched)
        return self._fetched

    def __call__(self) -> Ingested:
        names, before, fetched = self._downloads()
        known = {s.id for s in self.snapshots.entries()}
        kept = []
        for each in fetched:
            kept += ingest(each, self.snapshots, self.store, "yfinance", each.params).snapshots
        new = sum(s.id not in known for s in kept)
        batch = self.stored.load()
        counts = (new, len(kept) - new)
        return ingested(batch, batch, before, counts, f"fetch {', '.join(names)}")
