"""The `score` use case: the registered champion predicts from the latest history window."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import polars as pl

from pipeline.data.inputs import load_inputs, store_inputs
from pipeline.domain import (
    PREDICTION_COLUMNS,
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
SCORE_COLUMNS = PREDICTION_COLUMNS


@dataclass(frozen=True)
class ScoreResult:
    """The predictions written, and the tickers left out for too short a history."""

    frame: pl.DataFrame
    skipped: dict[str, int] = field(default_factory=dict)  # ticker -> rows it had
    need_rows: int = 0


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
    ``data.short_history: skip``, left out and reported) before anything is written.
    """
    uris = model_uris(cfg, model_uri)
    models = [ports.loader.load(uri) for uri in uris]
    # The models, not today's config, decide which benchmark their features need.
    inputs = load_inputs(benchmark_of(models), ports.source, ports.benchmark)
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
        "scoring %d tickers from %d history rows with %s", len(inputs.tickers), window.height, named
    )
    outs, logged = [], []
    for uri, model in zip(uris, models, strict=True):
        horizon = model.horizon if model.horizon is not None else cfg.horizons[uris.index(uri)]
        out = latest_predictions(model, model_bars(model, window), horizon, uri)
        outs.append(out)
        logged.append(log_rows(out, model, "score"))
    out = pl.concat(outs, how="diagonal_relaxed")
    store_inputs(ports.store, inputs)  # the validated prices join the warehouse
    if ports.log is not None:
        ports.log.record(pl.concat(logged))  # one batch: all horizons are logged or none
    sink.write(out)
    return ScoreResult(out, skipped, need)


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
