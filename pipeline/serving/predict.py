"""One way to turn bars into predictions, shared by `score`, replay and `POST /predict`.

All run the registered pipeline over each ticker's bars in one call and shape the kept rows
the same way; doing it in one place means batch, replay and online outputs cannot drift apart
(same columns, same checks, same errors). `score` and the API keep each ticker's latest bar,
replay keeps every bar of its date range.

A model registered with an interval calibration also gets ``lower_<level>`` and
``upper_<level>`` around each prediction (``lower_80, upper_80, lower_95, upper_95``). For the
adaptive method the band scales with a volatility feature's value on the predicted row, read
from the model's own feature step over the same bars; where it is undefined (warm-up) or not
positive, that row's bounds are null. The prediction log keeps them too, as one JSON column
(``pipeline.data.predlog.encode_bounds``), since the levels are the model's.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from pipeline.data.predlog import encode_bounds
from pipeline.domain import PREDICTION_COLUMNS, LoadedModel
from pipeline.errors import ModelError
from pipeline.evaluation.intervals import IntervalCalibration

SCALE = "__interval_scale__"  # the scale feature on each predicted bar, until bounds are set


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


def _scale(model: LoadedModel, bars: pl.DataFrame, feature: str, uri: str) -> np.ndarray:
    """``feature`` on every bar, computed by the model's own feature step (the very values
    its estimator was given), not by a second implementation."""
    step = model.feature_step
    if feature not in model.feature_names:  # the loader checks; a model built in memory may not
        raise ModelFailureError(f"model {uri} does not compute its scale feature {feature!r}")
    try:
        matrix = np.asarray(step.transform(bars), dtype=float)
    except Exception as exc:
        raise ModelFailureError(
            f"model {uri} failed to compute {feature}: {type(exc).__name__}: {exc}"
        ) from exc
    return matrix[:, model.feature_names.index(feature)]


def predict_bars(model: LoadedModel, bars: pl.DataFrame, uri: str) -> pl.DataFrame:
    """``bars`` plus a ``prediction`` column: one model call over every row.

    ``bars`` must be sorted by ticker and date and hold enough history before the rows that
    are kept: features are causal, so each row's prediction uses only the rows before it.
    For the adaptive intervals a scale column rides along, for :func:`as_predictions`.
    """
    out = bars.with_columns(pl.Series("prediction", _predict(model, bars, uri)))
    feature = model.intervals.scale_feature if model.intervals is not None else None
    if feature is None:
        return out
    return out.with_columns(pl.Series(SCALE, _scale(model, bars, feature, uri)))


def _bounds(calibration: IntervalCalibration | None) -> list[pl.Expr]:
    """``lower_<k>, upper_<k>`` per level: the prediction -/+ the level's quantile (times the
    scale); null where the quantile or the scale is undefined."""
    if calibration is None:
        return []
    unit = pl.lit(1.0)
    if calibration.scale_feature is not None:
        scale = pl.col(SCALE)
        # A residual over a scale <= 0 was left out of calibration: no band there either.
        unit = pl.when(scale.is_finite() & (scale > 0)).then(scale)
    exprs = []
    for key, q in calibration.quantiles.items():
        half = unit * q if q is not None else pl.lit(None, dtype=pl.Float64)
        pred = pl.col("prediction")
        exprs += [(pred - half).alias(f"lower_{key}"), (pred + half).alias(f"upper_{key}")]
    return exprs


def as_predictions(
    predicted: pl.DataFrame, model: LoadedModel, horizon: int, uri: str
) -> pl.DataFrame:
    """The kept rows of ``predict_bars`` as ``PREDICTION_COLUMNS``, then the model's interval
    bounds if it has a calibration; refuses non-finite predictions."""
    out = predicted.select(  # PREDICTION_COLUMNS, in order
        pl.col("ticker"),
        pl.col("date").alias("as_of_date"),
        pl.lit(horizon, dtype=pl.Int32).alias("horizon"),
        pl.col("prediction"),
        pl.lit(model.name, dtype=pl.String).alias("model_name"),
        pl.lit(model.version, dtype=pl.String).alias("model_version"),
        *_bounds(model.intervals),
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
    """``out`` as prediction-log rows: ``LOG_COLUMNS`` (its prediction columns, the model's
    run, the UTC time, the source), then ``intervals``, its interval bounds as JSON (null for
    a model without a calibration). Every model's rows have the same columns, so the rows of
    several concatenate as they are."""
    scored_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    bounds = [c for c in model.intervals.columns if c in out.columns] if model.intervals else []
    return out.select(
        *PREDICTION_COLUMNS,
        pl.lit(model.run_id, dtype=pl.String).alias("run_id"),
        pl.lit(scored_at).alias("scored_at"),
        pl.lit(source).alias("source"),
        encode_bounds(bounds),
    )  # LOG_COLUMNS, in order, then intervals
