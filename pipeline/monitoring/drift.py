"""Drift statistics as pure functions on arrays: quantile bins, PSI and the KS test.

Bins come from the training rows: the inner edges are the deciles (duplicates dropped, so a
feature with few distinct values, such as the day of the week, gets fewer bins) and two more
bins hold values below the training minimum and above its maximum. Those two are empty in the
reference by construction, so a window that leaves the training range scores higher than any
window inside it could (PSI would otherwise saturate once every value sits in one bin).

PSI is ``sum((a - e) * ln(a / e))`` over bins, with both shares clipped to ``EPS`` so that an
empty bin costs a finite amount. NaN values (a feature not yet defined) are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

EPS = 1e-4
N_BINS = 10
# Window lengths (trading days) whose PSI over the training rows is stored in the profile.
NULL_WINDOWS = (5, 10, 20, 40, 60, 120, 250)

FloatArray = NDArray[np.float64]


def finite(values: ArrayLike) -> FloatArray:
    """The finite values of ``values`` as a 1-D float array (NaN and inf left out)."""
    v = np.asarray(values, dtype=float).ravel()
    return v[np.isfinite(v)]


@dataclass(frozen=True)
class Bins:
    """Quantile bins: below ``low``, ``inner``-separated bins within range, above ``high``."""

    low: float
    high: float
    inner: tuple[float, ...]

    @property
    def size(self) -> int:
        """How many bins: the in-range ones plus the two out-of-range ones."""
        return len(self.inner) + 3

    def index(self, values: ArrayLike) -> NDArray[np.intp]:
        """The bin of each finite value; in range, a bin is closed on the right."""
        v = finite(values)
        idx = np.searchsorted(np.asarray(self.inner, dtype=float), v, side="left") + 1
        idx[v < self.low] = 0
        idx[v > self.high] = self.size - 1
        return np.asarray(idx, dtype=np.intp)

    def shares(self, values: ArrayLike) -> FloatArray:
        """The share of the finite values in each bin (all zeros without any)."""
        idx = self.index(values)
        counts = np.bincount(idx, minlength=self.size).astype(float)
        return counts / idx.size if idx.size else counts


def quantile_bins(values: ArrayLike, n_bins: int = N_BINS) -> Bins | None:
    """Bins from the ``n_bins``-quantiles of the finite ``values``; None without any value."""
    v = finite(values)
    if v.size == 0:
        return None
    low, high = float(v.min()), float(v.max())
    # Empirical quantiles are values of the data: a discrete feature gets no empty bin
    # between two of its values (interpolated edges would make some).
    edges = np.unique(np.quantile(v, np.arange(1, n_bins) / n_bins, method="inverted_cdf"))
    # An edge at the maximum would leave an empty in-range bin above it: drop it.
    inner = tuple(float(e) for e in edges if e < high)
    return Bins(low, high, inner)


def psi(actual: ArrayLike, expected: ArrayLike, eps: float = EPS) -> float:
    """Population stability index of bin shares ``actual`` against ``expected``."""
    a = np.clip(np.asarray(actual, dtype=float), eps, None)
    e = np.clip(np.asarray(expected, dtype=float), eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def cumulative_counts(bins: Bins, values: ArrayLike, positions: ArrayLike) -> FloatArray:
    """``(dates + 1, bins)`` running counts: row ``d`` counts the finite values dated before
    date index ``d`` (``positions`` is each row's date index, 0 for the first date)."""
    v = np.asarray(values, dtype=float).ravel()
    pos = np.asarray(positions, dtype=np.intp).ravel()
    keep = np.isfinite(v)
    n_dates = int(pos.max()) + 1 if pos.size else 0
    counts = np.zeros((n_dates + 1, bins.size))
    np.add.at(counts, (pos[keep] + 1, bins.index(v[keep])), 1.0)
    return np.asarray(np.cumsum(counts, axis=0), dtype=float)


def window_psis(
    cumulative: FloatArray, expected: ArrayLike, window: int, stride: int = 1, eps: float = EPS
) -> FloatArray:
    """PSI against ``expected`` of every run of ``window`` consecutive dates starting every
    ``stride`` dates, from :func:`cumulative_counts`.

    A window takes every row, of every ticker, whose date falls in it, as the monitored
    window does; windows without a finite value are left out. On the reference rows this is
    how much PSI a window of that length shows with no drift at all, which the status is
    calibrated on.
    """
    per_window = (cumulative[window:] - cumulative[:-window])[::stride]
    totals = per_window.sum(axis=1)
    shares = per_window[totals > 0] / totals[totals > 0, None]
    a = np.clip(shares, eps, None)
    e = np.clip(np.asarray(expected, dtype=float), eps, None)
    return np.asarray(np.sum((a - e) * np.log(a / e), axis=1), dtype=float)


def ks_test(recent: ArrayLike, reference: ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov (statistic, p-value); NaN without values on a side.

    The p-value assumes independent rows; rolling features are autocorrelated, so it is
    reported for reading, not used for the status.
    """
    from scipy.stats import ks_2samp  # about 1 s to import: only when monitoring

    r, s = finite(recent), finite(reference)
    if r.size == 0 or s.size == 0:
        return (math.nan, math.nan)
    result = ks_2samp(r, s)
    return (float(result.statistic), float(result.pvalue))


def positions_of(dates: ArrayLike) -> NDArray[np.intp]:
    """Each row's index among the sorted distinct ``dates``."""
    _, inverse = np.unique(np.asarray(dates).ravel(), return_inverse=True)
    return np.asarray(inverse, dtype=np.intp)
