"""Prediction intervals of a training job and of a backtest: the out-of-sample scale the
walk-forward report measures them with, and the calibration a registered version carries.

The scale of the adaptive method is one of the model's own feature columns, read from the
training set's feature matrix on the very test rows the out-of-sample predictions cover.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from pipeline.domain import Fold, LoadedModel
from pipeline.errors import ModelError
from pipeline.evaluation.interval_report import IntervalSetup
from pipeline.evaluation.intervals import TAG, IntervalCalibration
from pipeline.evaluation.results import WalkForwardReport
from pipeline.settings import IntervalsConfig
from pipeline.training.dataset import TrainingSet

log = logging.getLogger(__name__)


def oos_scale(data: TrainingSet, folds: Sequence[Fold], feature: str) -> np.ndarray:
    """``feature`` on every test row, in the order of ``data.out_of_sample(folds, ...)``."""
    if feature not in data.columns:
        raise ModelError(
            f"scale feature {feature!r} is not one of the model's feature columns; "
            "see model.intervals.scale_feature"
        )
    column = data.columns.index(feature)
    return np.concatenate([data.X[data.masks(f)[1], column] for f in folds])


def interval_setup(
    cfg: IntervalsConfig, data: TrainingSet, folds: Sequence[Fold]
) -> IntervalSetup | None:
    """What the walk-forward report measures intervals with (None: intervals are off)."""
    if not cfg.levels:
        return None
    if cfg.scale_feature is None:
        return IntervalSetup(cfg.levels)
    return IntervalSetup(cfg.levels, cfg.scale_feature, oos_scale(data, folds, cfg.scale_feature))


def calibration_tags(report: WalkForwardReport) -> dict[str, str]:
    """The registered version's ``intervals`` tag: the report's quantiles over every fold."""
    if report.intervals is None or report.intervals_method is None:
        return {}
    calibration = IntervalCalibration(
        method=report.intervals_method,
        scale_feature=report.intervals_scale_feature,
        quantiles={key: score.q for key, score in report.intervals.items()},
    )
    return {TAG: calibration.to_tag()}


def model_intervals(model: LoadedModel, configured: IntervalsConfig) -> IntervalsConfig:
    """What a backtest of ``model`` measures: its own calibration's levels and method, or for
    a version registered without one, today's configuration, as split conformal when the
    model does not compute the configured scale feature."""
    own = model.intervals
    if own is not None:
        return IntervalsConfig(levels=own.levels, scale_feature=own.scale_feature)
    scale = configured.scale_feature
    if scale is not None and scale not in model.feature_names:
        log.warning("%s v%s does not compute %s: split conformal", model.name, model.version, scale)
        return configured.model_copy(update={"scale_feature": None})
    return configured
