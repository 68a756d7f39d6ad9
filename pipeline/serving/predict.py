"""One way to turn bars into predictions, shared by `score`, replay and `POST /predict`.

All run the registered pipeline over each ticker's bars in one call and shape the kept rows
the same way; doing it in one place means batch, replay and online outputs cannot drift apart
(same columns, same checks, same errors). `score` and the API keep each ticker's latest bar,
replay keeps every bar of its date range.
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


def predict_bars(model: LoadedModel, bars: pl.DataFrame, uri: str) -> pl.DataFrame:
    """``bars`` plus a ``prediction`` column: one model call over every row.

    ``bars`` must be sorted by ticker and date and hold enough history before the rows that
    are kept: features are causal, so each row's prediction uses only the rows before it.
    """
    return bars.with_columns(pl.Series("prediction", _predict(model, bars, uri)))


def as_predictions(
    predicted: pl.DataFrame, model: LoadedModel, horizon: int, uri: str
) -> pl.DataFrame:
    """The kept rows of ``predict_bars`` as ``PREDICTION_COLUMNS``; refuses non-finite ones."""
    out = predicted.select(  # PREDICTION_COLUMNS, in order
        pl.col("ticker"),
        pl.col("date").alias("as_of_date"),
        pl.lit(horizon, dtype=pl.Int32).alias("horizon"),
        pl.col("prediction"),
        pl.lit(model.name, dtype=pl.String).alias("model_name"),
        pl.lit(model.version, dtype=pl.String).alias("model_version"),
    )
    bad = out.filter(~pl.col("prediction").is_finite())
    if bad.height:
        tickers = bad["ticker"].unique(maintain_order=True).to_list()
        # One row per ticker for score and the API; replay also says where the first one is.
        where = "" if bad.height == len(tickers) else f" ({bad.height} rows, first {bad.row(0)[1]})"
        raise NonFinitePredictionError(
            f"the prediction of {uri} is not finite for ticker(s) {tickers}{where}; the bars "
            "are outside the range it can handle"
        )
    return out


def latest_predictions(
    model: LoadedModel, bars: pl.DataFrame, horizon: int, uri: str
) -> pl.DataFrame:
    """One row per ticker, as of its latest bar (``bars`` sorted by ticker and date)."""
    latest = predict_bars(model, bars, uri).group_by("ticker", maintain_order=True).last()
    return as_predictions(latest, model, horizon, uri)


def log_rows(out: pl.DataFrame, model: LoadedModel, source: str) -> pl.DataFrame:
    """``out`` as prediction-log rows: plus the model's run, the UTC time and the source."""
    scored_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return out.with_columns(
        pl.lit(model.run_id, dtype=pl.String).alias("run_id"),
        pl.lit(scored_at).alias("scored_at"),
        pl.lit(source).alias("source"),
    )
