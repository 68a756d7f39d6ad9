"""Forecast metrics on log returns, computed on test windows only."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

METRICS = ("rmse", "mae", "directional_accuracy")


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    err = np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float)
    return float(np.sqrt(np.mean(err**2)))


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    err = np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float)
    return float(np.mean(np.abs(err)))


def directional_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Share of rows where the predicted sign matches the realised sign.

    A zero prediction or a zero realised return counts as 'not up', so the zero-return
    baseline scores the share of non-positive days rather than an undefined value.
    """
    t = np.asarray(y_true, dtype=float) > 0
    p = np.asarray(y_pred, dtype=float) > 0
    return float(np.mean(t == p))


def score_all(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Every forecast metric by name."""
    return {
        "rmse": rmse(y_true, y_pred),
        "mae": mae(y_true, y_pred),
        "directional_accuracy": directional_accuracy(y_true, y_pred),
    }


def mean_over_folds(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """Unweighted mean of each metric across folds (every fold has the same test length)."""
    return {m: float(np.mean([f[m] for f in per_fold])) for m in per_fold[0] if m in METRICS}
