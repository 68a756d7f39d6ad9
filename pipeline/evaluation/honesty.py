"""How much of a backtest's Sharpe ratio survives sampling noise and multiple testing.

- :func:`stationary_bootstrap_sharpe_ci`: a confidence interval for the annualised Sharpe that
  respects serial dependence (Politis & Romano, 1994, "The Stationary Bootstrap", JASA).
- :func:`probabilistic_sharpe_ratio` and :func:`deflated_sharpe_ratio`: the probability that the
  true Sharpe beats a benchmark, and the same after correcting for the best of many trials
  (Bailey & Lopez de Prado, 2012 "The Sharpe Ratio Efficient Frontier" and 2014 "The Deflated
  Sharpe Ratio", Journal of Portfolio Management).
- :class:`TrialSet`: the trials a model was picked from, the deflated Sharpe's N and V.

The normal distribution comes from :class:`statistics.NormalDist` (stdlib), not scipy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def stationary_bootstrap_indices(
    n: int, n_boot: int, mean_block: float, rng: np.random.Generator
) -> NDArray[np.intp]:
    """``(n_boot, n)`` resampling indices of the stationary bootstrap.

    Each resample is a sequence of blocks with geometric lengths (mean ``mean_block``): every
    position starts a new block with probability ``1 / mean_block`` at a uniformly random
    index, otherwise it continues with the next index, wrapping around circularly. The first
    position always starts a block. ``mean_block=1`` is the ordinary i.i.d. bootstrap.
    """
    if n < 1 or n_boot < 1:
        raise ValueError("n and n_boot must be >= 1")
    if mean_block < 1:
        raise ValueError("mean_block must be >= 1")
    starts = rng.integers(0, n, size=(n_boot, n))
    new_block = rng.random((n_boot, n)) < 1.0 / mean_block
    new_block[:, 0] = True
    pos = np.arange(n)
    # For every position, the position at which its block began (a running max of block starts).
    block_begin = np.maximum.accumulate(np.where(new_block, pos, 0), axis=1)
    offset = pos - block_begin
    first = np.take_along_axis(starts, block_begin, axis=1)
    return np.asarray((first + offset) % n, dtype=np.intp)


def _annualised_sharpe(x: NDArray[np.float64], periods_per_year: float) -> NDArray[np.float64]:
    """Row-wise ``mean / std(ddof=1) * sqrt(ppy)``; ``nan`` where the std is (near) zero."""
    mean = x.mean(axis=-1)
    sd = x.std(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(sd > 1e-12, mean / sd, np.nan) * math.sqrt(periods_per_year)
    return np.asarray(sharpe, dtype=float)


def stationary_bootstrap_sharpe_ci(
    returns: ArrayLike,
    n_boot: int = 1000,
    mean_block: float | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    periods_per_year: float = 252,
) -> tuple[float, float]:
    """Percentile ``(low, high)`` interval of the annualised Sharpe by stationary bootstrap.

    ``returns`` are per-period simple returns; the Sharpe is ``mean / std(ddof=1) *
    sqrt(periods_per_year)`` as in :func:`pipeline.evaluation.strategy.strategy_metrics`.
    ``mean_block`` defaults to ``n ** (1/3)`` (at least 1), the usual rate for a variance-type
    statistic. The interval covers ``1 - alpha``. Resamples with zero variance are dropped;
    ``(nan, nan)`` is returned if fewer than 2 returns or no resample has a defined Sharpe.
    Deterministic for a given ``seed``.
    """
    r = np.asarray(returns, dtype=float).ravel()
    n = r.size
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if n < 2:
        return (math.nan, math.nan)
    block = max(1.0, n ** (1.0 / 3.0)) if mean_block is None else float(mean_block)
    rng = np.random.default_rng(seed)
    idx = stationary_bootstrap_indices(n, n_boot, block, rng)
    sharpes = _annualised_sharpe(r[idx], periods_per_year)
    sharpes = sharpes[np.isfinite(sharpes)]
    if sharpes.size == 0:
        return (math.nan, math.nan)
    low, high = np.quantile(sharpes, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (float(low), float(high))


def sharpe_moments(returns: ArrayLike) -> tuple[float, float, float]:
    """Per-period Sharpe (ddof=1), skewness and Pearson (non-excess) kurtosis of ``returns``.

    These are the inputs :func:`probabilistic_sharpe_ratio` and :func:`deflated_sharpe_ratio`
    expect. Skewness and kurtosis use population (biased) central moments. Undefined values
    (fewer than 2 returns, zero variance) are ``nan``.
    """
    r = np.asarray(returns, dtype=float).ravel()
    if r.size < 2:
        return (math.nan, math.nan, math.nan)
    d = r - r.mean()
    m2 = float(np.mean(d**2))
    if m2 <= 1e-24:
        return (math.nan, math.nan, math.nan)
    sharpe = float(r.mean() / r.std(ddof=1))
    return (sharpe, float(np.mean(d**3)) / m2**1.5, float(np.mean(d**4)) / m2**2)


def probabilistic_sharpe_ratio(
    sharpe: float, n_obs: int, skew: float, kurtosis: float, benchmark: float = 0.0
) -> float:
    """Probability that the true Sharpe exceeds ``benchmark`` (Bailey & Lopez de Prado).

    ``PSR = Φ((SR - SR*) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR²))``.
    ``sharpe`` and ``benchmark`` are *per-period* (not annualised) Sharpe ratios, ``n_obs`` is
    the number of return periods ``T`` and ``kurtosis`` is the non-excess (Pearson) kurtosis,
    3 for a normal distribution. Returns ``nan`` if the variance term is not positive.
    """
    if n_obs < 2:
        raise ValueError("n_obs must be >= 2")
    var_term = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not var_term > 0:
        return math.nan
    z = (sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var_term)
    return _NORMAL.cdf(z)


def expected_max_sharpe(n_trials: int, sharpe_variance_across_trials: float) -> float:
    """Expected maximum of ``n_trials`` per-period Sharpe estimates under a zero true Sharpe.

    ``SR0 = sqrt(V) * ((1 - g) Φ⁻¹(1 - 1/N) + g Φ⁻¹(1 - 1/(N e)))`` with ``g`` the
    Euler-Mascheroni constant and ``V`` the variance of the Sharpe ratios across the trials.
    One trial means no selection, so ``SR0 = 0``.
    """
    if n_trials < 1:
        raise ValueError("n_trials must be >= 1")
    if sharpe_variance_across_trials < 0:
        raise ValueError("sharpe_variance_across_trials must be non-negative")
    if n_trials == 1:
        return 0.0
    z1 = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance_across_trials) * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe_ratio(
    sharpe: float,
    n_trials: int,
    n_obs: int,
    skew: float,
    kurtosis: float,
    sharpe_variance_across_trials: float,
) -> float:
    """Deflated Sharpe ratio (Bailey & Lopez de Prado, 2014).

    The :func:`probabilistic_sharpe_ratio` of the selected strategy against the benchmark
    :func:`expected_max_sharpe` ``SR0``: the Sharpe the best of ``n_trials`` skill-less
    strategies would be expected to reach by luck. All Sharpe ratios (``sharpe`` and those
    behind ``sharpe_variance_across_trials``) are *per-period*, not annualised; ``kurtosis``
    is the non-excess (Pearson) kurtosis (3 for normal returns). With ``n_trials == 1`` this
    is the PSR against 0. Values near 1 mean the Sharpe is unlikely to be a selection artefact.
    """
    sr0 = expected_max_sharpe(n_trials, sharpe_variance_across_trials)
    return probabilistic_sharpe_ratio(sharpe, n_obs, skew, kurtosis, benchmark=sr0)


@dataclass(frozen=True)
class TrialSet:
    """The trials a model was picked from: the deflated Sharpe's N and variance V.

    Bailey & Lopez de Prado deflate by every configuration tried, so the set is every trial
    that produced a per-period strategy Sharpe, pruned trials included with their Sharpe over
    the folds they ran. N and V are both taken over exactly that set (counting pruned trials in
    N but leaving them out of V understated V, and so overstated the deflated Sharpe). A trial
    without a Sharpe (failed before its first fold, or never traded) is in neither.
    """

    n_trials: int
    sharpe_variance: float

    @classmethod
    def from_sharpes(cls, sharpes: Iterable[float]) -> TrialSet:
        """The set of the finite per-period Sharpes given; V is their sample variance (ddof=1).

        The only place the variance of trial Sharpes is computed.
        """
        finite = [float(s) for s in sharpes if math.isfinite(s)]
        variance = float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0
        return cls(len(finite), variance)

    def deflated_sharpe(self, returns: ArrayLike) -> float:
        """:func:`deflated_sharpe_ratio` of the picked strategy's per-period ``returns``."""
        r = np.asarray(returns, dtype=float).ravel()
        sharpe, skew, kurtosis = sharpe_moments(r)
        # No trial recorded (an old model without tags) is a single try: the PSR against 0.
        n = max(self.n_trials, 1)
        return deflated_sharpe_ratio(sharpe, n, r.size, skew, kurtosis, self.sharpe_variance)
