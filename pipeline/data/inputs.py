"""Load and validate everything a job reads (prices and the benchmark) before writing anything."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace
from typing import Any, Literal

import polars as pl

from pipeline.domain import PriceBatch, PriceSource, PriceStore
from pipeline.errors import ConfigError, DataError
from pipeline.ordering import by_ticker_date, ordered

log = logging.getLogger(__name__)


def _from_last_close(bench: pl.DataFrame, since: Any) -> pl.DataFrame:
    """The benchmark's rows from its last date at or before ``since`` on: the close that the
    warehouse's as-of join gives the window's first date (``sql/020``)."""
    before = bench.filter(pl.col("date") <= since).get_column("date").max()
    return bench.filter(pl.col("date") >= (since if before is None else before))


@dataclass(frozen=True)
class Inputs:
    """Validated batches: the panel to model and, if features need one, the benchmark."""

    batch: PriceBatch
    benchmark_batch: PriceBatch | None
    benchmark: str | None

    @property
    def tickers(self) -> tuple[str, ...]:
        return self.batch.tickers

    def stale(self) -> tuple[dict[str, dt.date], dt.date]:
        """Tickers whose last bar is before the panel's last date (each with that bar's
        date), and the panel's last date: what `score` leaves out and `validate` reports.

        No tolerance: a ticker whose exchange was closed on the panel's last day is stale for
        that evening too; scoring it would label an older bar's forecast as tonight's.
        """
        ranges = self.batch.ranges
        last_date = max(hi for _, hi in ranges.values())
        return {t: hi for t, (_, hi) in sorted(ranges.items()) if hi < last_date}, last_date

    def history(self, store: PriceStore, rows: int | None = None) -> pl.LazyFrame:
        """Price history of the panel (with ``bench_close`` when a benchmark is used)."""
        return store.history(self.tickers, self.benchmark, rows, self.batch.ranges)

    def window(self, rows: int) -> Inputs:
        """These inputs cut to each ticker's last ``rows`` rows, plus the benchmark's rows from
        its last close at or before the earliest date kept: everything a latest-date
        ``history(rows=rows)`` returns, and nothing more.

        `score` computes in a scratch warehouse before writing anything; filling it with
        every row of a 500-ticker file only to read back the last few hundred per ticker
        cost more than the prediction. The benchmark keeps every date from the earliest
        ticker's window on, so a ticker whose data ends early still finds its
        ``bench_close``, also when the benchmark is one of the panel's own tickers.
        """
        frame = ordered(self.batch.frame)
        kept = frame.group_by("ticker", maintain_order=True).tail(rows)
        if kept.height == frame.height:
            return self
        since = kept.get_column("date").min()
        if self.benchmark is not None and self.benchmark_batch is None:
            own = pl.col("ticker") == self.benchmark
            bench = _from_last_close(frame.filter(own), since)
            kept = by_ticker_date(pl.concat([kept.filter(~own), bench]))
        bench_batch = self.benchmark_batch
        if bench_batch is not None:
            bench_batch = replace(bench_batch, frame=_from_last_close(bench_batch.frame, since))
        return replace(self, batch=replace(self.batch, frame=kept), benchmark_batch=bench_batch)

    def require_history(
        self, need: int, policy: Literal["error", "skip"], why: str
    ) -> tuple[Inputs, dict[str, int]]:
        """Inputs without tickers shorter than ``need`` rows, and those tickers' row counts.

        ``policy`` 'error' refuses the job if any ticker is short; 'skip' leaves short tickers
        out with a warning, and still refuses when no ticker is left.
        """
        short = short_tickers(self.batch.frame, need)
        if not short:
            return self, {}
        detail = ", ".join(f"{t} has {n} row(s)" for t, n in short.items())
        message = f"{self.batch.source}: not enough history {why}: {detail}; need {need} per ticker"
        if policy == "error":
            hint = " (or set data.yaml short_history: skip)" if len(self.tickers) > 1 else ""
            raise DataError(f"{message}. Provide longer history{hint}")
        if len(short) == len(self.tickers):
            raise DataError(f"{message}. No ticker has enough history")
        log.warning("%s: leaving out (short_history: skip)", message)
        frame = self.batch.frame.filter(~pl.col("ticker").is_in(list(short)))
        return replace(self, batch=replace(self.batch, frame=frame)), short

    @property
    def benchmark_sha256(self) -> str:
        """sha256 of the benchmark's file ('' without one, or when it is part of the input)."""
        return "" if self.benchmark_batch is None else self.benchmark_batch.sha256


def short_tickers(frame: pl.DataFrame, need: int) -> dict[str, int]:
    """Tickers with fewer than ``need`` rows, with their row counts, in ticker order."""
    counts = frame.group_by("ticker").len().filter(pl.col("len") < need).sort("ticker")
    return dict(zip(counts["ticker"].to_list(), counts["len"].to_list(), strict=True))


@dataclass(frozen=True)
class LoadedSource:
    """A PriceSource over a batch already read and validated: reuse it, never re-read."""

    batch: PriceBatch

    def load(self) -> PriceBatch:
        return self.batch


def load_inputs(
    benchmark: str | None, source: PriceSource, benchmark_source: PriceSource | None
) -> Inputs:
    """Read and validate; raises before anything is written if either input is bad.

    ``benchmark`` is the ticker the features need (``FeaturesConfig.benchmark``) or None; it
    is read from ``benchmark_source`` only when the panel does not hold it.
    """
    batch = source.load()
    if benchmark is None:
        return Inputs(batch, None, None)
    if benchmark in batch.tickers:
        return Inputs(batch, None, benchmark)
    if benchmark_source is None:
        raise ConfigError(
            f"model.yaml: key 'features.market': benchmark '{benchmark}' is not in the input; "
            f"set data.yaml 'benchmark_path' to its price file"
        )
    bench_batch = benchmark_source.load()
    if benchmark not in bench_batch.tickers:
        raise DataError(
            f"{bench_batch.source}: benchmark '{benchmark}' not found; tickers: "
            f"{list(bench_batch.tickers)}"
        )
    return Inputs(batch, bench_batch, benchmark)


def store_inputs(store: PriceStore, inputs: Inputs) -> None:
    """Upsert the validated batches into the warehouse."""
    store.upsert(inputs.batch)
    if inputs.benchmark_batch is not None:
        store.upsert(inputs.benchmark_batch)
