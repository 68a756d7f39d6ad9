"""The walk-forward report's prediction-interval fields, measured on out-of-sample rows.

Uses the primitives of :mod:`pipeline.evaluation.intervals`: fold ``k``'s bands are calibrated
on the residuals of folds ``< k`` and scored on fold ``k``'s rows, so coverage is measured where
calibration never looked; the quantile over every fold's residuals is what a model trained on
these folds carries (the registered version's ``intervals`` tag).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.evaluation.intervals import (
    calibrate,
    interval_metrics,
    level_key,
    walk_forward_bounds,
)
from pipeline.evaluation.results import IntervalLevels, IntervalScore


@dataclass(frozen=True)
class IntervalSetup:
    """How the report measures prediction intervals: the levels and, for the scaled method,
    the scale feature's name and its value on every out-of-sample row (aligned with the
    ``OutOfSample`` rows, which come from the same fold masks)."""

    levels: tuple[float, ...]
    scale_feature: str | None = None
    scale: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.scale_feature is None) != (self.scale is None):
            raise ValueError("IntervalSetup: give a scale_feature together with its scale")


def interval_levels(
    fold: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    levels: Sequence[float],
    scale: np.ndarray | None,
) -> IntervalLevels:
    """Per level: walk-forward coverage, mean width and Winkler score, and the quantile
    calibrated on every fold's residuals."""
    q = calibrate(y_true, y_pred, levels, scale)
    out: IntervalLevels = {}
    for level in levels:
        lower, upper = walk_forward_bounds(fold, y_true, y_pred, level, scale)
        m = interval_metrics(y_true, lower, upper, level)
        key = level_key(level)
        out[key] = IntervalScore(
            n=int(m["n"]),
            coverage=m["coverage"],
            mean_width=m["mean_width"],
            winkler=m["winkler"],
            q=q[key],
        )
    return out


def interval_fields(
    fold: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, setup: IntervalSetup | None
) -> dict[str, object]:
    """The report's interval fields for these rows (none without a setup or levels)."""
    if setup is None or not setup.levels:
        return {}
    scale = setup.scale
    if scale is not None and scale.shape != y_true.shape:
        raise ValueError(f"interval scale has {scale.shape} values for {y_true.shape} rows")
    return {
        "intervals": interval_levels(fold, y_true, y_pred, setup.levels, scale),
        "intervals_method": "split" if scale is None else "scaled",
        "intervals_scale_feature": setup.scale_feature,
        # The plain method next to the adaptive one, so that what scaling buys is visible.
        "intervals_split": (
            None if scale is None else interval_levels(fold, y_true, y_pred, setup.levels, None)
        ),
    }
