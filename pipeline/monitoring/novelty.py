"""The drift detector: how far, and for how long, an input left what the training data held.

Chosen by the detector benchmark (``benchmarks/test_bench_drift.py``, table in
``benchmarks/README.md``), against PSI on quantile bins, the share of the window beyond the
training tails, and Wasserstein distances. Rolling features are autocorrelated, so tests that
assume independent rows over a 60-day window either saturate (PSI) or flag every window (KS,
Evidently's defaults); and a window keeps a one-week blip in view for 60 days. So:

* **Range.** The training rows' ``tail`` and ``1 - tail`` quantiles of the input (per ticker
  when the ticker has enough training rows, else pooled): what the model was fitted on.
* **Excess.** Each day, how far the value lies outside that range, in units of the range's own
  width (``0`` inside it). Scale-free, and it does not saturate: tripled volatility scores far
  above a new record set by chance, which beats the old one by a sliver of the range.
* **Run rule.** A status holds on a day when at least ``run_days`` of the last ``run_window``
  days have an excess above its margin (``alert_margin`` for alert, ``warn_margin`` for warn).
  A lasting regime keeps it; a one-day outlier never sets it, and a blip clears within days
  instead of staying in a 60-day window for two months.

Everything here is a pure function of arrays; :mod:`pipeline.monitoring.datadrift` applies it
to each input and ticker of the monitored window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipeline.monitoring.drift import finite
from pipeline.monitoring.report import Status

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
TAIL = 0.001  # the range: training quantiles 0.1% and 99.9% (a handful of rows beyond each)


@dataclass(frozen=True)
class Range:
    """What the training rows held of one input: its ``tail`` quantiles."""

    low: float
    high: float

    @property
    def width(self) -> float:
        """The unit excess is measured in (1 for a constant input, so any move counts)."""
        span = self.high - self.low
        return span if span > 0 else 1.0


def training_range(values: ArrayLike, tail: float = TAIL) -> Range | None:
    """The ``tail`` / ``1 - tail`` empirical quantiles of the finite ``values`` (values of the
    data, so a discrete input such as the month keeps its own extremes); None without any."""
    v = finite(values)
    if v.size == 0:
        return None
    low, high = np.quantile(v, [tail, 1.0 - tail], method="inverted_cdf")
    return Range(float(low), float(high))


def excess(values: ArrayLike, rng: Range) -> FloatArray:
    """Each value's distance outside ``rng`` in range widths (0 inside, NaN where undefined);
    positive both above and below."""
    v = np.asarray(values, dtype=float).ravel()
    out = np.maximum(v - rng.high, 0.0) + np.maximum(rng.low - v, 0.0)
    return np.asarray(out / rng.width, dtype=float)


def run_rule(flags: ArrayLike, run_days: int, run_window: int) -> BoolArray:
    """Per day: at least ``run_days`` of the last ``run_window`` days (this one included)
    are flagged. Days before a full ``run_window`` count the days there are."""
    f = np.asarray(flags, dtype=bool).ravel().astype(int)
    counts = np.cumsum(f)
    lagged = np.concatenate([np.zeros(run_window, dtype=int), counts])[: counts.size]
    return np.asarray(counts - lagged >= run_days, dtype=bool)


def episode_start(held: BoolArray, flags: BoolArray, run_window: int) -> int | None:
    """Index of the first flagged day of the episode still holding on the last day: walk back
    while the rule holds, then take the first flag in that first day's run window."""
    if held.size == 0 or not held[-1]:
        return None
    first = held.size - 1
    while first > 0 and held[first - 1]:
        first -= 1
    lo = max(0, first - run_window + 1)
    return lo + int(np.argmax(flags[lo : first + 1]))


@dataclass(frozen=True)
class Verdict:
    """One input (one ticker's rows, in date order) over the window."""

    status: Status  # ok | warn | alert
    days_beyond: int  # days of the window beyond the range at all
    max_excess: float  # in range widths
    last_value: float
    since: int | None  # index of the episode's first day (alert, else warn), if holding


def judge(
    values: ArrayLike,
    rng: Range,
    *,
    warn_margin: float,
    alert_margin: float,
    run_days: int,
    run_window: int,
) -> Verdict:
    """The status of one series on its last day, by the run rule at both margins."""
    v = np.asarray(values, dtype=float).ravel()
    e = np.nan_to_num(excess(v, rng), nan=0.0)
    statuses: list[tuple[Status, int]] = []
    levels: tuple[tuple[Status, float], ...] = (("alert", alert_margin), ("warn", warn_margin))
    for status, margin in levels:
        flags = e > margin
        held = run_rule(flags, run_days, run_window)
        start = episode_start(held, flags, run_window)
        if start is not None:
            statuses.append((status, start))
    status, since = statuses[0] if statuses else ("ok", None)
    defined = v[np.isfinite(v)]
    return Verdict(
        status=status,
        days_beyond=int((e > 0).sum()),
        max_excess=float(e.max()) if e.size else 0.0,
        last_value=float(defined[-1]) if defined.size else float("nan"),
        since=since,
    )
