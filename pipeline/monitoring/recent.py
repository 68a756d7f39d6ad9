"""The recent window: the model's own features and predictions on the last trading days.

Features come from the registered pipeline's ``features`` step and predictions from the
registered pipeline itself, so what is compared with the training rows is exactly what the
model sees and says (no second feature code, no train/serve skew).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from pipeline.domain import LoadedModel
from pipeline.errors import ModelError
from pipeline.monitoring.datacolumns import data_columns
from pipeline.monitoring.report import WindowInfo


@dataclass(frozen=True)
class RecentWindow:
    """The last ``days`` rows of every ticker: model inputs and predictions, row-aligned."""

    days: int
    dates: np.ndarray
    tickers: np.ndarray
    columns: tuple[str, ...]
    X: np.ndarray  # one column per model input
    predictions: np.ndarray
    data: dict[str, np.ndarray] = field(default_factory=dict)  # monitored data columns

    def info(self) -> WindowInfo:
        return WindowInfo(
            days=self.days,
            first_date=str(self.dates.min()),
            last_date=str(self.dates.max()),
            rows=int(self.dates.size),
            tickers=sorted({str(t) for t in self.tickers}),
        )


def feature_step(model: LoadedModel, uri: str) -> Any:
    """The fitted ``features`` step of a registered stockpipe pipeline, or ModelError."""
    steps = getattr(model.raw, "named_steps", None)
    if not steps or "features" not in steps:
        raise ModelError(f"{uri} is not a stockpipe pipeline (no leading 'features' step)")
    return steps["features"]


def _predict(model: LoadedModel, bars: pl.DataFrame, uri: str) -> np.ndarray:
    try:
        preds = np.asarray(model.predictor.predict(bars.to_pandas()), dtype=float).ravel()
    except Exception as exc:  # any flavour's failure, reported with the model that raised
        raise ModelError(f"model {uri} failed to predict: {type(exc).__name__}: {exc}") from exc
    if preds.shape != (bars.height,):
        raise ModelError(f"model {uri} returned {preds.size} predictions for {bars.height} bars")
    return preds


def recent_window(model: LoadedModel, bars: pl.DataFrame, days: int, uri: str) -> RecentWindow:
    """Features and predictions of ``bars`` (sorted by ticker and date, each ticker with its
    warm-up before the window), kept for each ticker's last ``days`` rows."""
    step = feature_step(model, uri)
    X = np.asarray(step.transform(bars), dtype=float)
    columns = tuple(str(c) for c in step.get_feature_names_out())
    predictions = _predict(model, bars, uri)
    keep = bars.select(
        (pl.int_range(pl.len()).over("ticker") >= pl.len().over("ticker") - days).alias("k")
    )["k"].to_numpy()
    return RecentWindow(
        days=days,
        dates=bars["date"].to_numpy()[keep],
        tickers=bars["ticker"].to_numpy()[keep],
        columns=columns,
        X=X[keep],
        predictions=predictions[keep],
        data={name: values[keep] for name, values in data_columns(bars).items()},
    )
