"""The `score` use case: the registered champion predicts from the latest history window."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from pipeline.data.inputs import load_inputs, store_inputs
from pipeline.domain import ModelLoader, PredictionSink, PriceSource, PriceStore
from pipeline.features.spec import FeaturesConfig, Market
from pipeline.serving.predict import PREDICTION_COLUMNS, latest_predictions
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


@dataclass(frozen=True)
class ScorePorts:
    source: PriceSource
    store: PriceStore
    registry: ModelLoader
    benchmark: PriceSource | None = None
    # Where the prediction is computed before anything is written (see TrainPorts).
    workspace: Callable[[], PriceStore] = field(default=lambda: _memory_store())


def _memory_store() -> PriceStore:
    from pipeline.data.warehouse import DuckDBStore

    return DuckDBStore(":memory:")


def score(
    cfg: StockpipeConfig, ports: ScorePorts, sink: PredictionSink, model_uri: str | None = None
) -> ScoreResult:
    """Predict the next ``horizon`` log return for every ticker, as of its latest date.

    A ticker with less than the model's warm-up plus one row is refused (or, with
    ``data.short_history: skip``, left out and reported) before anything is written.
    """
    uri = model_uri or cfg.tracking.champion_uri
    model = ports.registry.load(uri)
    # The model, not today's config, decides which benchmark its features need.
    features = (
        FeaturesConfig(market=Market(benchmark=model.benchmark))
        if model.benchmark
        else (FeaturesConfig())
    )
    inputs = load_inputs(features, ports.source, ports.benchmark)
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
    sink.write(out)
    return ScoreResult(out, skipped, need)
