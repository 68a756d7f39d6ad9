"""Fit the pipeline tail on rows the caller hands over: the same fitted model, fewer copies.

``Pipeline(steps).fit(X, y)`` copies the rows at the imputer (in ``fit`` and again in
``transform``) and at the scaler, and the median imputer sorts a masked copy of every column
(``np.ma.median``): on 300k rows that sort cost about as much as a LightGBM fit. Training
always fits on an array nobody reads afterwards (a fold's rows, ``X[mask]``, or a copy of
the whole matrix), so :func:`fit_owned` imputes and scales that array in place, computes a
median only where it can matter, and returns a Pipeline whose every fitted attribute and
prediction is the same bits as the plain fit's (``tests/unit/test_overhead_bits.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.model.estimators import stopping_fit_params, trees_used

Steps = Sequence[tuple[str, Any]]
# Steps whose `copy=False` means "work in place on the array given": the same arithmetic on
# the same values as with a copy, so the same bits.
IN_PLACE = (SimpleImputer, StandardScaler)


@dataclass(frozen=True)
class Holdout:
    """Early stopping: validation rows (owned, transformed in place) and the patience."""

    X: np.ndarray
    y: np.ndarray
    rounds: int
    kind: str  # the estimator kind: how it takes a validation set and reports its trees


def _fast_median(imputer: SimpleImputer) -> bool:
    """Whether the column-wise median below reproduces ``imputer.fit`` exactly."""
    nan = imputer.missing_values
    is_nan = isinstance(nan, float) and np.isnan(nan)
    return imputer.strategy == "median" and not imputer.add_indicator and is_nan


def fit_imputer(imputer: SimpleImputer, X: np.ndarray) -> SimpleImputer:
    """``imputer.fit(X)``, with the median computed column by column.

    A column without NaN takes ``np.median`` (a partial sort: the same middle value(s), the
    same mean of two); a column with NaN goes through ``np.ma.median`` as before, alone. The
    imputer is then fitted on the one row of those medians: the median of one value is that
    value, so ``statistics_`` and every other fitted attribute equal the plain fit's.
    """
    if not _fast_median(imputer):
        return imputer.fit(X)
    missing = np.isnan(X).any(axis=0)
    stats = np.empty(X.shape[1], dtype=np.float64)
    for j in range(X.shape[1]):
        column = X[:, j]
        if missing[j]:  # masked median of this column only (rare: market or cross-section)
            alone = clone(imputer).set_params(copy=True)
            stats[j] = alone.fit(column.reshape(-1, 1)).statistics_[0]
        else:
            stats[j] = np.median(column)
    return imputer.fit(stats.reshape(1, -1))


def _fit_transform(name: str, step: Any, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fit one transforming step on ``X`` and return ``X`` transformed (in place if it can)."""
    if name == "impute" and isinstance(step, SimpleImputer):
        return np.asarray(fit_imputer(step, X).transform(X))
    return np.asarray(step.fit_transform(X, y))


def _transform(fitted: Steps, X: np.ndarray) -> np.ndarray:
    """``X`` through already-fitted transforming steps (``passthrough`` skipped)."""
    for _, step in fitted:
        if step != "passthrough":
            X = np.asarray(step.transform(X))
    return X


def fit_owned(
    steps: Steps,
    X: np.ndarray,
    y: np.ndarray,
    *,
    impute: bool = True,
    holdout: Holdout | None = None,
) -> tuple[Pipeline, int | None]:
    """Fit unfitted ``steps`` (impute, scale, select, model) on ``X``, which is overwritten.

    ``impute=False`` (the caller knows neither these rows nor the rows it will predict hold a
    NaN) leaves the imputer out, as ``passthrough``: it would change nothing. With a
    ``holdout`` the estimator stops early on its rows, transformed by the fitted steps.
    Returns the fitted pipeline, in-place steps switched back to copying their input as the
    registered model must, and the boosting rounds kept (None without a holdout).
    """
    own = [step for _, step in steps if isinstance(step, IN_PLACE) and step.get_params()["copy"]]
    for step in own:
        step.set_params(copy=False)
    fitted: list[tuple[str, Any]] = []
    for name, step in steps[:-1]:
        if name == "impute" and not impute:
            fitted.append((name, "passthrough"))
            continue
        X = _fit_transform(name, step, X, y)
        fitted.append((name, step))
    name, model = steps[-1]
    params: dict[str, Any] = {}
    if holdout is not None:
        X_val = _transform(fitted, holdout.X)
        params = stopping_fit_params(holdout.kind, model, holdout.rounds, X_val, holdout.y)
    model.fit(X, y, **params)
    for step in own:
        step.set_params(copy=True)
    trees = None if holdout is None else trees_used(holdout.kind, model)
    return Pipeline([*fitted, (name, model)]), trees
