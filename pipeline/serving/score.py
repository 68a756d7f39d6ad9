"""The `score` use case: the registered champion predicts from the latest history window."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field, replace

import polars as pl

from pipeline.data.inputs import Inputs, load_inputs, store_inputs
from pipeline.domain import (
    DataPorts,
    LoadedModel,
    ModelLoader,
    PredictionLog,
    PredictionSink,
)
from pipeline.errors import StockpipeError
from pipeline.serving.predict import latest_predictions, log_rows
from pipeline.settings import StockpipeConfig

log = logging.getLogger(__name__)

# Extra rows beyond the model's declared warm-up: cheap insurance, still not the whole file.
HISTORY_MARGIN = 5


@dataclass(frozen=True)
class ScoreResult:
    """The predictions written, and the tickers left out: too short a history, or stale.

    A ticker is stale when its last bar is older than the panel's last date (``last_date``):
    delisted, suspended, or a file that stopped updating. It gets no prediction (it would be
    a forecast made weeks ago, labelled as tonight's) and is not logged.
    """

    frame: pl.DataFrame
    skipped: dict[str, int] = field(default_factory=dict)  # ticker -> rows it had
    need_rows: int = 0
    stale_tickers: dict[str, dt.date] = field(default_factory=dict)  # ticker -> its last date
    last_date: dt.date | None = None  # the panel's last date, which stale tickers fall short of

    def stale_warning(self) -> str | None:
        """One line naming every stale ticker with its last date, or None without any."""
        if not self.stale_tickers:
            return None
        named = ", ".join(f"{t} (last bar {d})" for t, d in self.stale_tickers.items())
        return (
            f"warning: not scored, {len(self.stale_tickers)} stale ticker(s) whose data ends "
            f"before the panel's last date {self.last_date}: {named}"
        )


@dataclass(frozen=True, kw_only=True)
class ScorePorts(DataPorts):
    """The data (computed in ``workspace`` before anything is written) and the model loader."""

    loader: ModelLoader
    log: PredictionLog | None = None  # the prediction log (the warehouse in production)


def score(
    cfg: StockpipeConfig, ports: ScorePorts, sink: PredictionSink, model_uri: str | None = None
) -> ScoreResult:
    """Predict the next ``horizon`` log return for every ticker, as of its latest date: one row
    per ticker and horizon (every configured horizon's champion, or the one ``model_uri``).

    A ticker with less than the models' warm-up plus one row is refused (or, with
    ``data.short_history: skip``, left out and reported) before anything is written. A stale
    ticker (see :class:`ScoreResult`) is left out and reported, whatever its history.
    """
    uris = model_uris(cfg, model_uri)
    models = [ports.loader.load(uri) for uri in uris]
    # The models, not today's config, decide which benchmark their features need.
    validated = load_inputs(benchmark_of(models), ports.source, ports.benchmark)
    inputs, stale, last_date = without_stale(validated)
    warmup = max(m.warmup for m in models)
    need = warmup + 1
    named = ", ".join(uris)
    inputs, skipped = inputs.require_history(
        need, cfg.data.short_history, f"to score with {named} (warm-up {warmup} rows + 1)"
    )
    # The scratch warehouse gets each ticker's last window only: the rest of the file is
    # validated (above) and stored (below) but never read, and loading it all into the
    # workspace was the larger share of scoring a big panel.
    recent = inputs.window(need + HISTORY_MARGIN)
    workspace = ports.workspace()
    store_inputs(workspace, recent)
    window = recent.history(workspace, rows=need + HISTORY_MARGIN).collect()
    log.info(
        "scoring %d tickers from %d history rows with %s (%d stale left out)",
        len(inputs.tickers), window.height, named, len(stale),
    )  # fmt: skip
    out, logged = _predict_latest(cfg, uris, models, window, list(stale))
    # The validated prices join the warehouse: stale tickers' too, short-skipped ones not.
    store_inputs(ports.store, without(validated, list(skipped)))
    if ports.log is not None:
        ports.log.record(logged)  # one batch: all horizons are logged or none
    sink.write(out)
    return ScoreResult(out, skipped, need, stale, last_date)


def _predict_latest(
    cfg: StockpipeConfig,
    uris: list[str],
    models: list[LoadedModel],
    window: pl.DataFrame,
    stale: list[str],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every model's latest-date rows over ``window`` (all horizons), and their log rows."""
    outs, logged = [], []
    for i, (uri, model) in enumerate(zip(uris, models, strict=True)):
        horizon = model.horizon if model.horizon is not None else cfg.horizons[i]
        out = latest_predictions(model, model_bars(model, window), horizon, uri)
        # A stale in-panel benchmark stays in the window for the others' market features,
        # but is not predicted as of tonight either.
        out = out.filter(~pl.col("ticker").is_in(stale))
        outs.append(out)
        logged.append(log_rows(out, model, "score"))
    return pl.concat(outs, how="diagonal_relaxed"), pl.concat(logged)


def without_stale(inputs: Inputs) -> tuple[Inputs, dict[str, dt.date], dt.date]:
    """``inputs`` without its stale tickers (:meth:`Inputs.stale`), those tickers' last
    dates, and the panel's. The in-panel benchmark keeps its rows (the other tickers' market
    features read them); its prediction is dropped after the model call instead.
    """
    stale, last_date = inputs.stale()
    drop = [t for t in stale if t != inputs.benchmark]
    return without(inputs, drop), stale, last_date


def without(inputs: Inputs, tickers: list[str]) -> Inputs:
    """``inputs`` without the rows of ``tickers`` (the benchmark's own batch untouched)."""
    if not tickers:
        return inputs
    frame = inputs.batch.frame.filter(~pl.col("ticker").is_in(tickers))
    return replace(inputs, batch=replace(inputs.batch, frame=frame))


def model_uris(cfg: StockpipeConfig, model_uri: str | None) -> list[str]:
    """What `score`, replay and `serve` load: the model asked for, or else every configured
    horizon's champion (primary horizon first)."""
    if model_uri:
        return [model_uri]
    return [cfg.for_horizon(h).tracking.champion_uri for h in cfg.horizons]


def benchmark_of(models: list[LoadedModel]) -> str | None:
    """The benchmark ticker the models' features need (None when none of them uses one)."""
    needed = {m.benchmark for m in models if m.benchmark}
    if len(needed) > 1:
        raise StockpipeError(f"the models need different benchmarks {sorted(needed)}")
    return needed.pop() if needed else None


def model_bars(model: LoadedModel, bars: pl.DataFrame) -> pl.DataFrame:
    """``bars`` as ``model`` reads them: without the benchmark column when it uses none."""
    if model.benchmark is None and "bench_close" in bars.columns:
        return bars.drop("bench_close")
    return bars
