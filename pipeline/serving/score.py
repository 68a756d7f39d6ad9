"""The `score` use case: the registered champion predicts from the latest history window."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import polars as pl

from pipeline.data.inputs import load_inputs, store_inputs
from pipeline.domain import (
    PREDICTION_COLUMNS,
    DataPorts,
    ModelLoader,
    PredictionLog,
    PredictionSink,
)
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
    """Predict the next ``horizon`` log return for every ticker, as of its latest date.

    A ticker with less than the model's warm-up plus one row is refused (or, with
    ``data.short_history: skip``, left out and reported) before anything is written.
    """
    uri = model_uri or cfg.tracking.champion_uri
    model = ports.loader.load(uri)
    # The model, not today's config, decides which benchmark its features need.
    inputs = load_inputs(model.benchmark or None, ports.source, ports.benchmark)
    need = model.warmup + 1
    inputs, skipped = inputs.require_history(
        need, cfg.data.short_history, f"to score with {uri} (warm-up {model.warmup} rows + 1)"
    )
    workspace = ports.workspace()
    store_inputs(workspace, inputs)
    window = inputs.history(workspace, rows=model.warmup + 1 + HISTORY_MARGIN).collect()
    log.info(
        "scoring %d tickers from %d history rows with %s", len(inputs.tickers), window.height, uri
    )
    horizon = model.horizon if model.horizon is not None else cfg.model.target.horizon
    out = latest_predictions(model, window, horizon, uri)
    store_inputs(ports.store, inputs)  # the validated prices join the warehouse
    if ports.log is not None:
        ports.log.record(log_rows(out, model, "score"))
    sink.write(out)
    return ScoreResult(out, skipped, need)
