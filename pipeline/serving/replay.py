"""Replay scoring: `score` as it would have run on every evening of a date range.

Features are causal (each row's features read only the rows up to its date), so one model
call over ``[first date - warm-up - margin, last date]`` gives, for every date in between,
what a `score` run on the data cut at that date gives: the same rows enter each prediction.
The one difference is recursive smoothers (EWM, MACD, RSI): replay seeds them further back,
so they differ from a `score` run by the weight left on the seed (below 1e-8 once warmed up).

A date for which a ticker has fewer than warm-up + 1 rows is refused, or with
``data.short_history: skip`` left out and reported, as `score` would have done that evening.
Left out means left out of the whole panel on that date (cross-sectional features rank only
the tickers `score` would have kept), so the range is predicted in segments whose set of
tickers is fixed: one segment unless a ticker becomes scorable inside the range.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from pipeline.data.inputs import Inputs, LoadedSource, load_inputs, store_inputs
from pipeline.domain import LoadedModel, PredictionSink, PriceBatch, PriceStore
from pipeline.errors import DataError, StockpipeError
from pipeline.serving.predict import as_predictions, log_rows, predict_bars
from pipeline.serving.score import HISTORY_MARGIN, ScorePorts, benchmark_of, model_bars, model_uris
from pipeline.settings import StockpipeConfig

log = logging.getLogger(__name__)

_Span = tuple[dt.date, dt.date]

# Rows of the range predicted per model call, at most (each call adds its own warm-up rows).
# Bounds the feature matrix of a long replay over a wide panel; the benchmark fits in one call.
CHUNK_ROWS = 500_000


class ReplayRangeError(StockpipeError):
    """The --start/--end range is empty, reversed, or holds no trading date of the input."""


def check_range(start: dt.date, end: dt.date) -> None:
    """Refuse a reversed range before anything is looked up or read."""
    if start > end:
        raise ReplayRangeError(
            f"the replay range is reversed: --start {start} is after --end {end}"
        )


@dataclass(frozen=True)
class ReplayResult:
    """The predictions written (one row per ticker, trading date and horizon) and what was not.

    ``skipped`` maps a ticker to the number of its trading dates in the range left out because
    it had fewer than ``need_rows`` rows of history up to them.
    """

    frame: pl.DataFrame
    start: dt.date
    end: dt.date
    skipped: dict[str, int] = field(default_factory=dict)
    need_rows: int = 0
    calls: int = 0  # model calls made (segments and chunks of the range)

    @property
    def covered(self) -> tuple[dt.date, dt.date, int]:
        """First and last date predicted, and how many distinct trading dates."""
        dates = pl.col("as_of_date")
        span = self.frame.select(dates.min().alias("first"), dates.max().alias("last"))
        return span["first"][0], span["last"][0], self.frame["as_of_date"].n_unique()


def replay(
    cfg: StockpipeConfig,
    ports: ScorePorts,
    sink: PredictionSink,
    start: dt.date,
    end: dt.date,
    model_uri: str | None = None,
    source: str = "replay",
) -> ReplayResult:
    """Predict every trading date in ``[start, end]`` for every ticker, as `score` would have:
    with every configured horizon's champion, or the one ``model_uri``.

    Everything is checked before anything is written: the range, the input, the models and
    every ticker's history. Rows are logged with ``source`` ('replay'; `cycle` backfills with
    'cycle'); the log is idempotent on (model, version, ticker, date, horizon, source), so
    replaying a range again replaces its rows.
    """
    check_range(start, end)
    batch = ports.source.load()
    _require_dates(batch, start, end)
    uris = model_uris(cfg, model_uri)
    models = [ports.loader.load(uri) for uri in uris]
    # The models, not today's config, decide which benchmark their features need.
    inputs = load_inputs(benchmark_of(models), LoadedSource(batch), ports.benchmark)
    indexed = _indexed(inputs.batch.frame)
    need = max(m.warmup for m in models) + 1
    targets, skipped = _targets(
        indexed, batch.source, (start, end), need, cfg.data.short_history, ", ".join(uris)
    )
    workspace = ports.workspace()
    store_inputs(workspace, inputs)
    outs, logged, calls = [], [], 0
    for i, (uri, model) in enumerate(zip(uris, models, strict=True)):
        horizon = model.horizon if model.horizon is not None else cfg.horizons[i]
        predicted, n = _predict_range(model, workspace, inputs, indexed, targets, uri)
        outs.append(as_predictions(predicted, model, horizon, uri))
        logged.append(log_rows(outs[-1], model, source))
        calls += n
    out = pl.concat(outs, how="diagonal_relaxed")
    log.info(
        "replayed %d rows (%d tickers, %s to %s) with %s in %d model call(s)",
        out.height, out["ticker"].n_unique(), start, end, ", ".join(uris), calls,
    )  # fmt: skip
    store_inputs(ports.store, inputs)  # the validated prices join the warehouse, as in score
    if ports.log is not None:
        ports.log.record(pl.concat(logged))  # one batch: every horizon is logged or none
    sink.write(out)
    return ReplayResult(out, start, end, skipped, need, calls)


def _require_dates(batch: PriceBatch, start: dt.date, end: dt.date) -> None:
    """ReplayRangeError unless some ticker traded between ``start`` and ``end``."""
    dates = batch.frame.select(
        pl.col("date").is_between(start, end).any(), pl.col("date").min().alias("first"),
        pl.col("date").max().alias("last"),
    )  # fmt: skip
    found, first, last = dates.row(0)
    if not found:
        raise ReplayRangeError(
            f"no trading date between --start {start} and --end {end}: {batch.source} has "
            f"dates from {first} to {last}"
        )


def _indexed(frame: pl.DataFrame) -> pl.DataFrame:
    """(ticker, date, row): each date's row number in its ticker's history, from 0."""
    return (
        frame.select("ticker", "date")
        .sort("ticker", "date")
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("ticker").alias("row"))
    )


def _targets(
    indexed: pl.DataFrame,
    source: str,
    span: _Span,
    need: int,
    policy: Literal["error", "skip"],
    uri: str,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The (ticker, date, row) to predict, and per ticker the dates left out as too short.

    Refuses (``policy`` 'error') or leaves out ('skip') a date on which its ticker has fewer
    than ``need`` rows up to it, as `score` would have on that evening. A ticker with no
    trading date in the range has nothing to predict, whatever its history.
    """
    in_range = indexed.filter(pl.col("date").is_between(*span))
    short = in_range.filter(pl.col("row") < need - 1)
    targets = in_range.filter(pl.col("row") >= need - 1)
    if short.is_empty():
        return targets, {}
    first = short.group_by("ticker").agg(pl.col("date").min(), pl.col("row").min()).sort("ticker")
    detail = ", ".join(f"{t} has {r + 1} row(s) up to {d}" for t, d, r in first.iter_rows())
    message = (
        f"{source}: not enough history to replay with {uri} (warm-up {need - 1} rows + 1) "
        f"on every date from {span[0]} to {span[1]}: {detail}; need {need} per ticker"
    )
    if policy == "error":
        raise DataError(f"{message}. Start later (--start) or set data.yaml short_history: skip")
    if targets.is_empty():
        raise DataError(f"{message}. No date in the range has enough history")
    log.warning("%s: leaving those dates out (short_history: skip)", message)
    counts = short.group_by("ticker").len().sort("ticker")
    return targets, dict(zip(counts["ticker"].to_list(), counts["len"].to_list(), strict=True))


def _parts(targets: pl.DataFrame) -> list[pl.DataFrame]:
    """``targets`` split into the rows of one model call each.

    A segment starts wherever a ticker becomes scorable, so each call sees only the tickers
    `score` would have kept on its dates; a segment longer than CHUNK_ROWS is cut by date.
    """
    starts = targets.group_by("ticker").agg(pl.col("date").min())["date"].unique().sort()
    segment = starts.search_sorted(targets["date"], side="right") - 1
    parts: list[pl.DataFrame] = []
    for seg in targets.with_columns(segment.alias("segment")).partition_by(
        "segment", maintain_order=True, include_key=False
    ):
        per_call = max(1, CHUNK_ROWS // seg["ticker"].n_unique())
        chunk = (pl.col("date").rank("dense") - 1) // per_call
        parts += seg.with_columns(chunk.alias("chunk")).partition_by(
            "chunk", maintain_order=True, include_key=False
        )
    return parts


def _window(part: pl.DataFrame, indexed: pl.DataFrame, lookback: int) -> dict[str, _Span]:
    """Per ticker, the dates of the rows one call reads: ``lookback`` rows before its first."""
    bounds = (
        part.group_by("ticker")
        .agg((pl.col("row").min() - lookback).clip(lower_bound=0), pl.col("date").max().alias("hi"))
        .join(indexed, on=["ticker", "row"])
    )
    return {t: (lo, hi) for t, lo, hi in bounds.select("ticker", "date", "hi").iter_rows()}


def _predict_range(
    model: LoadedModel,
    workspace: PriceStore,
    inputs: Inputs,
    indexed: pl.DataFrame,
    targets: pl.DataFrame,
    uri: str,
) -> tuple[pl.DataFrame, int]:
    """The predicted bars of ``targets`` (sorted by ticker and date), and the calls it took.

    Each call reads, per ticker, its rows from warm-up + margin rows before its first target
    (what `score` reads for that date) to its last target, and predicts them all at once.
    """
    lookback = model.warmup + HISTORY_MARGIN
    kept = []
    parts = _parts(targets)
    for part in parts:
        windows = _window(part, indexed, lookback)
        bars = workspace.history(tuple(sorted(windows)), inputs.benchmark, None, windows)
        predicted = predict_bars(model, model_bars(model, bars.collect()), uri)
        keys = part.select("ticker", "date")
        kept.append(predicted.join(keys, on=["ticker", "date"], how="semi", maintain_order="left"))
    return pl.concat(kept).sort("ticker", "date"), len(parts)
