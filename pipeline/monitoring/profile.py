"""The reference profile a registered version carries for drift monitoring.

Built by ``train`` from the winner's training rows (every model input, i.e. every column of
its feature step) and from the backtest's out-of-sample predictions, and logged as one JSON
artifact on the training job's run; the version's ``reference_run_id`` tag points at that run.
Per input it holds:

* the quantile bins (:class:`pipeline.monitoring.drift.Bins`) and the reference share per bin;
* a deterministic sample (up to ``SAMPLE_SIZE`` evenly spaced rows) for the KS test;
* the PSI that windows of the training rows themselves show against the reference, per window
  length in ``NULL_WINDOWS`` (reported for readers who expect PSI, and the status of profiles
  written before format 2);
* the training range the drift detector judges with (:mod:`pipeline.monitoring.novelty`):
  pooled, and per ticker for every ticker with ``TICKER_MIN_ROWS`` training rows or more.

Besides the model inputs, ``data`` holds the monitored data columns
(:mod:`pipeline.monitoring.datacolumns`): levels the scale-free features cannot see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict

from pipeline.monitoring.drift import (
    EPS,
    N_BINS,
    NULL_WINDOWS,
    Bins,
    cumulative_counts,
    finite,
    positions_of,
    quantile_bins,
    window_psis,
)
from pipeline.monitoring.novelty import Range, training_range

PROFILE_ARTIFACT = "monitoring/reference_profile.json"
PROFILE_TAG = "reference_run_id"  # version tag: the run holding the profile and backtest files
BACKTEST_PREDICTIONS = "backtest/predictions.parquet"  # logged by train on the same run
# 1,000 reference values make the KS test's power depend on the recent window alone (its
# effective size, n*m/(n+m), is within 6% of n for a 60-day window) and keep the file small.
SAMPLE_SIZE = 1000
MAX_WINDOWS = 2000  # windows per length whose PSI calibrates the status
# A ticker's own range needs enough rows for its 0.1% tails to mean something (~1 year);
# tickers with fewer are judged against the pooled range.
TICKER_MIN_ROWS = 250


class _Frozen(BaseModel):
    # Unknown keys are ignored: a newer stockpipe may add some to profiles an older one reads.
    model_config = ConfigDict(frozen=True, extra="ignore")


class NullPsi(_Frozen):
    """Quantiles of the PSI of every ``window``-day run of the reference rows."""

    window: int
    q50: float
    q95: float
    q99: float
    max: float


class Reference(_Frozen):
    """One model input (or the predictions) as seen in the reference rows."""

    n: int  # finite values
    missing: float  # share of NaN
    low: float
    high: float
    inner: list[float]
    shares: list[float]
    sample: list[float]
    null: list[NullPsi]
    # The detector's training range (format 2; None in older profiles: PSI decides then).
    range_low: float | None = None
    range_high: float | None = None
    per_ticker: dict[str, tuple[float, float]] = {}

    @property
    def bins(self) -> Bins:
        return Bins(self.low, self.high, tuple(self.inner))

    def range_for(self, ticker: str) -> Range | None:
        """The ticker's own training range, else the pooled one (None in old profiles)."""
        if ticker in self.per_ticker:
            return Range(*self.per_ticker[ticker])
        if self.range_low is None or self.range_high is None:
            return None
        return Range(self.range_low, self.range_high)

    def null_for(self, window: int) -> NullPsi | None:
        """The calibration of the longest stored window not longer than ``window`` (a
        shorter window is noisier, so its PSI quantiles are the conservative choice); the
        shortest stored one if ``window`` is shorter than all of them."""
        fitting = [n for n in self.null if n.window <= window]
        if fitting:
            return max(fitting, key=lambda n: n.window)
        return min(self.null, key=lambda n: n.window) if self.null else None


class ReferenceProfile(_Frozen):
    """Every model input's reference, and that of the backtest's predictions."""

    format: int = 2
    eps: float = EPS
    n_bins: int = N_BINS
    rows: int
    features: dict[str, Reference | None]  # None: never defined on the training rows
    predictions: Reference | None
    backtest_predictions: str = BACKTEST_PREDICTIONS
    data: dict[str, Reference | None] = {}  # monitored data columns (format 2)


def _sample(values: np.ndarray, size: int = SAMPLE_SIZE) -> list[float]:
    """Up to ``size`` evenly spaced values, in row order, to 6 significant digits."""
    if values.size == 0:
        return []
    picks = np.unique(np.linspace(0, values.size - 1, min(values.size, size)).round())
    return [float(f"{v:.6g}") for v in values[picks.astype(int)]]


def _null(
    bins: Bins, shares: np.ndarray, values: np.ndarray, positions: np.ndarray
) -> list[NullPsi]:
    """Quantiles of the PSI of the reference's own windows, per length in NULL_WINDOWS.

    Windows start every ``window // 10`` dates or more (at most ``MAX_WINDOWS`` per length):
    neighbours overlap by 90% or more, so the skipped ones add next to nothing, and a long
    history stays quick to profile.
    """
    cumulative = cumulative_counts(bins, values, positions)
    out = []
    for window in NULL_WINDOWS:
        if cumulative.shape[0] <= window:  # fewer dates than the window
            continue
        starts = cumulative.shape[0] - window
        stride = max(1, window // 10, -(-starts // MAX_WINDOWS))
        psis = window_psis(cumulative, shares, window, stride)
        if psis.size:
            q50, q95, q99 = np.quantile(psis, [0.5, 0.95, 0.99])
            out.append(NullPsi(window=window, q50=q50, q95=q95, q99=q99, max=float(psis.max())))
    return out


def _ticker_ranges(values: np.ndarray, tickers: ArrayLike | None) -> dict[str, tuple[float, float]]:
    """Each ticker's own training range, for tickers with ``TICKER_MIN_ROWS`` finite rows."""
    if tickers is None:
        return {}
    t = np.asarray(tickers).ravel()
    out = {}
    for name in np.unique(t):
        own = finite(values[t == name])
        rng = training_range(own) if own.size >= TICKER_MIN_ROWS else None
        if rng is not None:
            out[str(name)] = (rng.low, rng.high)
    return out


def reference(
    values: ArrayLike, dates: ArrayLike, tickers: ArrayLike | None = None
) -> Reference | None:
    """The reference of one input from its values on the reference rows, their dates and
    (for per-ticker ranges) their tickers."""
    v = np.asarray(values, dtype=float).ravel()
    positions = positions_of(dates)
    if positions.shape != v.shape:
        raise ValueError(f"{v.size} values but {positions.size} dates")
    bins = quantile_bins(v)
    if bins is None:
        return None
    kept = finite(v)
    shares = bins.shares(kept)
    pooled = training_range(kept)
    return Reference(
        n=int(kept.size),
        missing=float(1.0 - kept.size / v.size),
        low=bins.low,
        high=bins.high,
        inner=list(bins.inner),
        shares=[float(s) for s in shares],
        sample=_sample(kept),
        null=_null(bins, shares, v, positions),
        range_low=pooled.low if pooled else None,
        range_high=pooled.high if pooled else None,
        per_ticker=_ticker_ranges(v, tickers),
    )


def build_profile(
    X: np.ndarray,
    columns: Sequence[str],
    dates: ArrayLike,
    oos_predictions: ArrayLike | None = None,
    oos_dates: ArrayLike | None = None,
    *,
    tickers: ArrayLike | None = None,
    data: Mapping[str, np.ndarray] | None = None,
) -> ReferenceProfile:
    """The profile of training rows ``X`` (one column per model input, named ``columns``,
    rows dated ``dates`` of ``tickers``), of the monitored ``data`` columns on the same rows
    and of the backtest's out-of-sample predictions (pooled: a few hundred rows per ticker)."""
    preds = None
    if oos_predictions is not None and oos_dates is not None:
        preds = reference(oos_predictions, oos_dates)
    return ReferenceProfile(
        rows=int(X.shape[0]),
        features={c: reference(X[:, j], dates, tickers) for j, c in enumerate(columns)},
        predictions=preds,
        data={name: reference(v, dates, tickers) for name, v in (data or {}).items()},
    )
