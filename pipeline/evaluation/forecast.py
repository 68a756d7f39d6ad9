"""Forecast-quality metrics for walk-forward backtests of forward log returns.

Every function takes the realised forward log returns ``y_true`` (``log(close_{t+h}/close_t)``)
and the predicted ones ``y_pred`` as 1-D arrays of equal length, and returns a plain ``float``.
Metrics that are undefined on the given data (e.g. a correlation with a constant prediction)
return ``nan`` instead of raising, so a zero-return baseline can be scored alongside models.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

FORECAST_METRICS = ("rmse", "mae", "mape", "r2", "directional_accuracy", "ic", "rank_ic")


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    t = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} rows but y_pred has {p.size}")
    return t, p


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error of the predicted log returns."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error of the predicted log returns."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def directional_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Share of rows where the predicted sign matches the realised sign.

    A zero prediction or a zero realised return counts as 'not up', so the zero-return
    baseline scores the share of non-positive days rather than an undefined value.
    """
    t, p = _pair(y_true, y_pred)
    return float(np.mean((t > 0) == (p > 0)))


def mape_price(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute percentage error of the reconstructed *prices*.

    With base price ``P_t`` the predicted price is ``P_t * exp(y_pred)`` and the realised one
    ``P_t * exp(y_true)``, so ``|P_pred - P_true| / P_true = |exp(y_pred) - exp(y_true)| /
    exp(y_true)`` and ``P_t`` cancels. MAPE is defined on prices rather than on the returns
    themselves because returns sit near (and often exactly at) zero: dividing by the realised
    return would explode or be undefined, while a price is always positive.
    Returns ``nan`` for empty input.
    """
    t, p = _pair(y_true, y_pred)
    if t.size == 0:
        return math.nan
    return float(np.mean(np.abs(np.expm1(p - t))))


def r2_vs_zero(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Out-of-sample R² against the zero-return forecast: ``1 - Σ(y-p)² / Σy²``.

    Positive means the model beats always predicting no change; the zero forecast scores
    exactly 0. Returns ``nan`` when every realised return is zero (or the input is empty).
    """
    t, p = _pair(y_true, y_pred)
    denom = float(np.sum(t**2))
    if denom == 0.0:
        return math.nan
    return 1.0 - float(np.sum((t - p) ** 2)) / denom


def _pearson(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    """Pearson correlation, ``nan`` with fewer than 2 rows or zero variance in either input."""
    if x.size < 2:
        return math.nan
    dx = x - x.mean()
    dy = y - y.mean()
    sxx = float(np.dot(dx, dx))
    syy = float(np.dot(dy, dy))
    # Relative tolerance: a constant series can leave rounding residue in its deviations.
    if sxx <= 1e-20 * float(np.dot(x, x)) or syy <= 1e-20 * float(np.dot(y, y)):
        return math.nan
    return float(np.dot(dx, dy)) / math.sqrt(sxx * syy)


def average_ranks(x: ArrayLike) -> NDArray[np.float64]:
    """1-based ranks of ``x`` with ties given the average of the ranks they span."""
    a = np.asarray(x, dtype=float).ravel()
    # Imported here: scipy.stats costs about a second, and importing this module (every
    # report does) should not. scipy is a transitive dependency (scikit-learn), not a direct one.
    try:
        from scipy.stats import rankdata
    except ImportError:  # pragma: no cover - exercised only without scipy
        return _numpy_average_ranks(a)
    return np.asarray(rankdata(a, method="average"), dtype=float)


def _numpy_average_ranks(a: NDArray[np.float64]) -> NDArray[np.float64]:
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    # Start of each run of equal values, then the mean of 1-based positions within the run.
    starts = np.r_[True, sorted_a[1:] != sorted_a[:-1]]
    run_id = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], a.size] - 1
    avg = (first + last) / 2.0 + 1.0
    ranks = np.empty(a.size, dtype=float)
    ranks[order] = avg[run_id]
    return ranks


def _grouped_corr(
    t: NDArray[np.float64], p: NDArray[np.float64], groups: ArrayLike | None, ranked: bool
) -> float:
    if groups is None:
        if ranked:
            return _pearson(average_ranks(t), average_ranks(p))
        return _pearson(t, p)
    g = np.asarray(groups).ravel()
    if g.shape != t.shape:
        raise ValueError(f"groups has {g.size} rows but y_true has {t.size}")
    _, inverse = np.unique(g, return_inverse=True)
    values: list[float] = []
    for k in range(int(inverse.max()) + 1 if inverse.size else 0):
        mask = inverse == k
        gt, gp = t[mask], p[mask]
        if ranked:
            gt, gp = average_ranks(gt), average_ranks(gp)
        c = _pearson(gt, gp)
        if not math.isnan(c):
            values.append(c)
    return float(np.mean(values)) if values else math.nan


def information_coefficient(
    y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike | None = None
) -> float:
    """Pearson correlation between predicted and realised returns (the IC).

    Without ``groups`` (a single ticker) the correlation is taken over the whole series. With
    ``groups`` (typically the date of each row in a panel) it is computed cross-sectionally
    within each group and the per-group values are averaged with equal weight; groups with
    fewer than 2 rows or zero variance in either input are skipped. Returns ``nan`` when no
    correlation is defined (e.g. a constant prediction such as the zero baseline).
    """
    t, p = _pair(y_true, y_pred)
    return _grouped_corr(t, p, groups, ranked=False)


def rank_ic(y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike | None = None) -> float:
    """Spearman rank IC: like :func:`information_coefficient` but on average-tie ranks.

    Ranks are taken within each group when ``groups`` is given, over the series otherwise.
    """
    t, p = _pair(y_true, y_pred)
    return _grouped_corr(t, p, groups, ranked=True)


def forecast_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike | None = None
) -> dict[str, float]:
    """Every forecast metric by name (keys in :data:`FORECAST_METRICS`).

    ``mape`` is :func:`mape_price`, ``r2`` is :func:`r2_vs_zero`, ``ic``/``rank_ic`` use
    ``groups`` as described in :func:`information_coefficient`; the others are the functions
    of the same name. Undefined values are ``nan``.
    """
    t, p = _pair(y_true, y_pred)
    return {
        "rmse": rmse(t, p),
        "mae": mae(t, p),
        "mape": mape_price(t, p),
        "r2": r2_vs_zero(t, p),
        "directional_accuracy": directional_accuracy(t, p),
        "ic": information_coefficient(t, p, groups),
        "rank_ic": rank_ic(t, p, groups),
    }
