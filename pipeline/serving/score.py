"""The `score` use case: the registered champion predicts from the latest history window."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import polars as pl

from pipeline.data.inputs import load_inputs, store_inputs
from pipeline.domain import PredictionSink, PriceSource, PriceStore
from pipeline.errors import ModelError
from pipeline.features.spec import FeaturesConfig, Market
from pipeline.settings import StockpipeConfig

log = logging.getLogger(__name__)

# Extra rows beyond the model's declared warm-up: cheap insurance, still not the whole file.
HISTORY_MARGIN = 5
SCORE_COLUMNS = ("ticker", "as_of_date", "horizon", "prediction", "model_name", "model_version")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to predict plus what the registry knows about it."""

    predictor: Any  # anything with .predict(pandas.DataFrame) -> array
    name: str | None
    version: str | None
    warmup: int
    horizon: int | None
    benchmark: str | None = None
    raw: Any = None  # the underlying sklearn pipeline, for refitting in backtests
    tags: dict[str, str] = field(default_factory=dict)


class ModelLoader(Protocol):
    def load(self, model_uri: str) -> LoadedModel: ...


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
    try:
        preds = np.asarray(model.predictor.predict(window.to_pandas()), dtype=float).ravel()
    except Exception as exc:  # surface any flavour's failure with the URI that caused it
        raise ModelError(f"model {uri} failed to predict: {exc}") from exc
    horizon = model.horizon if model.horizon is not None else cfg.model.target.horizon
    out = (
        window.with_columns(pl.Series("prediction", preds))
        .group_by("ticker", maintain_order=True)
        .last()
        .select(
            pl.col("ticker"),
            pl.col("date").alias("as_of_date"),
            pl.lit(horizon, dtype=pl.Int32).alias("horizon"),
            pl.col("prediction"),
            pl.lit(model.name, dtype=pl.String).alias("model_name"),
            pl.lit(model.version, dtype=pl.String).alias("model_version"),
        )
    )
    store_inputs(ports.store, inputs)  # the validated prices join the warehouse
    sink.write(out)
    return ScoreResult(out, skipped, need)
