"""Conformal intervals: hand-computed quantiles, and coverage on random walks (numpy oracles)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.evaluation.intervals import (
    bounds,
    calibrate,
    conformal_quantile,
    interval_metrics,
    level_key,
    walk_forward_bounds,
)


def test_conformal_quantile_is_the_ceil_n_plus_one_order_statistic() -> None:
    scores = [5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 7.0, 8.0, 6.0]  # n = 9
    assert conformal_quantile(scores, 0.8) == 8.0  # ceil(10 * 0.8) = 8th smallest
    assert conformal_quantile(scores, 0.5) == 5.0  # ceil(5) = 5th
    assert conformal_quantile(scores, 0.95) == math.inf  # ceil(9.5) = 10 > n
    assert conformal_quantile([np.nan, 1.0, 2.0, 3.0], 0.5) == 2.0  # NaN scores ignored


def test_bounds_and_metrics_by_hand() -> None:
    lo, hi = bounds([0.0, 1.0], 0.5, scale=[1.0, 2.0])
    assert lo.tolist() == [-0.5, 0.0] and hi.tolist() == [0.5, 2.0]
    m = interval_metrics([0.2, 3.0], lo, hi, 0.8)
    assert m["coverage"] == 0.5
    assert m["mean_width"] == pytest.approx(1.5)
    # second row misses by 1.0: Winkler adds 2 / 0.2 * 1.0 = 10
    assert m["winkler"] == pytest.approx((1.0 + 2.0 + 10.0) / 2)
    assert level_key(0.8) == "80" and level_key(0.95) == "95"


def test_walk_forward_bounds_use_earlier_folds_only() -> None:
    fold = np.repeat([0, 1, 2], 4)
    y = np.array([1, -1, 2, -2, 0, 0, 0, 0, 100, 100, 100, 100], dtype=float)
    lo, hi = walk_forward_bounds(fold, y, np.zeros(12), 0.5)
    assert np.isnan(lo[:4]).all()  # nothing to calibrate the first fold on
    # fold 1 from |r| = [1, 1, 2, 2]: ceil(5 * 0.5) = 3rd smallest = 2
    assert hi[4:8].tolist() == [2.0] * 4
    # fold 2 from folds 0-1, never from its own (huge) residuals: [0,0,0,0,1,1,2,2] -> 5th = 1
    assert hi[8:].tolist() == [1.0] * 4


def _rolling_std(r: np.ndarray, window: int) -> np.ndarray:
    """Causal: the std of the ``window`` returns up to and including t (a plain loop)."""
    out = np.full(r.size, np.nan)
    for t in range(window - 1, r.size):
        out[t] = np.std(r[t - window + 1 : t + 1], ddof=1)
    return out


def _walk(vol: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Daily log returns with the given volatility path; target = next day's return, forecast
    zero, scale = the causal 20-day std; five 250-day test folds after 500 training days."""
    r = np.random.default_rng(seed).normal(0.0, 1.0, vol.size) * vol
    y, scale = r[1:], _rolling_std(r, 20)[:-1]
    fold = np.full(y.size, -1)
    for k in range(int((y.size - 500) // 250)):
        fold[500 + 250 * k : 500 + 250 * (k + 1)] = k
    keep = fold >= 0
    return fold[keep], y[keep], scale[keep]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_constant_volatility_coverage_is_nominal(seed: int) -> None:
    fold, y, scale = _walk(np.full(1751, 0.02), seed)
    for level in (0.8, 0.95):
        for s in (None, scale):
            lo, hi = walk_forward_bounds(fold, y, np.zeros_like(y), level, s)
            cov = interval_metrics(y, lo, hi, level)["coverage"]
            assert abs(cov - level) <= 0.04, (level, s is None, cov)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_volatility_tripling_breaks_split_but_not_scaled(seed: int) -> None:
    vol = np.where(np.arange(2001) < 1125, 0.01, 0.03)  # triples in the middle of fold 2
    fold, y, scale = _walk(vol, seed)
    zero = np.zeros_like(y)
    for level in (0.8, 0.95):
        plain = interval_metrics(y, *walk_forward_bounds(fold, y, zero, level), level)
        adaptive = interval_metrics(y, *walk_forward_bounds(fold, y, zero, level, scale), level)
        assert abs(adaptive["coverage"] - level) <= 0.06, adaptive
        assert plain["coverage"] < level - 0.10, plain  # calibrated on calm folds: too narrow


def test_calibrate_gives_one_quantile_per_level() -> None:
    q = calibrate([0.0, 1.0, 2.0, 3.0], [0.0] * 4, [0.5, 0.8])
    assert q == {"50": 2.0, "80": 3.0}
