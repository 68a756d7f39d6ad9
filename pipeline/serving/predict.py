"""One way to turn bars into predictions, shared by `score` and `POST /predict`.

Both run the registered pipeline over each ticker's recent bars and keep the prediction of
each ticker's latest date; doing it in one function means batch and online outputs cannot
drift apart (same columns, same checks, same errors).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from pipeline.domain import LoadedModel
from pipeline.errors import ModelError


class ModelFailureError(ModelError):
    """The model raised, or returned the wrong number of predictions."""


class NonFinitePredictionError(ModelError):
    """The model returned NaN or infinity: the bars are beyond what it can handle."""


def _predict(model: LoadedModel, bars: pl.DataFrame, uri: str) -> np.ndarray:
    try:
        preds = np.asarray(model.predictor.predict(bars.to_pandas()), dtype=float).ravel()
    except Exception as exc:  # any flavour's failure, reported with the model that raised
        raise ModelFailureError(
            f"model {uri} failed to predict: {type(exc).__name__}: {exc}"
        ) from exc
    if preds.shape != (bars.height,):
        raise ModelFailureError(
            f"model {uri} returned {preds.size} predictions for {bars.height} bars"
        )
    return preds


def latest_predictions(
    model: LoadedModel, bars: pl.DataFrame, horizon: int, uri: str
) -> pl.DataFrame:
    """One row per ticker, as of its latest bar (``bars`` sorted by ticker and date)."""
    out = (
        bars.with_columns(pl.Series("prediction", _predict(model, bars, uri)))
        .group_by("ticker", maintain_order=True)
        .last()
        .select(  # PREDICTION_COLUMNS, in order
            pl.col("ticker"),
            pl.col("date").alias("as_of_date"),
            pl.lit(horizon, dtype=pl.Int32).alias("horizon"),
            pl.col("prediction"),
            pl.lit(model.name, dtype=pl.String).alias("model_name"),
            pl.lit(model.version, dtype=pl.String).alias("model_version"),
        )
    )
    bad = out.filter(~pl.col("prediction").is_finite())["ticker"].to_list()
    if bad:
        raise NonFinitePredictionError(
            f"the prediction of {uri} is not finite for ticker(s) {bad}; the bars are outside "
            "the range it can handle"
        )
    return out


def log_rows(out: pl.DataFrame, model: LoadedModel, source: str) -> pl.DataFrame:
    """``out`` as prediction-log rows: plus the model's run, the UTC time and the source."""
    scored_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return out.with_columns(
        pl.lit(model.run_id, dtype=pl.String).alias("run_id"),
        pl.lit(scored_at).alias("scored_at"),
        pl.lit(source).alias("source"),
    )
