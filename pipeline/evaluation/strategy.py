"""Trading-strategy evaluation of return forecasts: positions, net returns and their metrics.

Timing convention (no look-ahead): row ``t`` holds the prediction made with data up to the close
of day ``t`` and the realised forward log return ``log(close_{t+h}/close_t)``. The position
decided from that prediction at ``t``'s close is held from ``t`` to ``t+h`` and earns exactly that
realised return, so the position never uses information from after it was taken.

Horizons above one day: consecutive rows of an ``h``-day target overlap (rows ``t`` and ``t+1``
share ``h-1`` days), so summing them would count most days ``h`` times. With ``horizon=h`` the
functions here hold *non-overlapping* positions: they trade on rows ``0, h, 2h, ...`` only, and
each returned period lasts ``h`` days. Pass ``periods_per_year=252 / h`` to
:func:`strategy_metrics` accordingly. The other ``h-1`` phases are ignored (not averaged).

Returns are simple (not log) per-period returns net of proportional costs; costs are charged on
turnover ``|position_t - position_{t-1}|`` with a flat position before the first period. The
final position is not closed out at the end of the sample (no exit cost is charged for it).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

Mode = Literal["long_flat", "long_short"]
STRATEGY_METRICS = (
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "hit_rate",
    "turnover",
    "exposure",
)
# Below this a per-period standard deviation (returns are fractions) is treated as zero.
_ZERO_STD = 1e-12


def positions(
    pred: ArrayLike, mode: Mode = "long_flat", threshold: float = 0.0
) -> NDArray[np.float64]:
    """Map predicted returns to positions in {-1, 0, 1}.

    ``long_flat``: 1 where ``pred > threshold``, else 0. ``long_short``: 1 where
    ``pred > threshold``, -1 where ``pred < -threshold``, else 0. ``threshold`` must be >= 0.
    """
    if threshold < 0:
        raise ValueError("threshold must be non-negative")
    p = np.asarray(pred, dtype=float)
    long = (p > threshold).astype(float)
    if mode == "long_flat":
        return long
    if mode == "long_short":
        return long - (p < -threshold).astype(float)
    raise ValueError(f"unknown mode {mode!r}; expected 'long_flat' or 'long_short'")


def _check_horizon(horizon: int) -> None:
    if horizon < 1:
        raise ValueError("horizon must be >= 1")


class PanelStrategyResult(NamedTuple):
    """Output of :func:`panel_strategy_returns`."""

    dates: NDArray[np.generic]  # sorted unique dates traded, one per period
    returns: NDArray[np.float64]  # portfolio simple return per date, net of costs
    weights: NDArray[np.float64]  # (n_dates, n_tickers) portfolio weights, 0 where absent
    tickers: NDArray[np.generic]  # column labels of ``weights``


def panel_strategy_returns(
    dates: ArrayLike,
    tickers: ArrayLike,
    pred: ArrayLike,
    realised: ArrayLike,
    mode: Mode = "long_flat",
    threshold: float = 0.0,
    cost_bps: float = 0.0,
    horizon: int = 1,
) -> PanelStrategyResult:
    """Equal-weight portfolio returns of a panel of (date, ticker) forecasts.

    On each date every ticker with a row gets weight ``position / n_tickers_on_that_date``
    (:func:`positions` with ``mode``/``threshold``); tickers without a row have weight 0.
    The date's return is ``Σ w * (exp(r) - 1) - cost_bps / 1e4 * Σ |w_t - w_{t-1}|``, with
    turnover taken per ticker on the weights (weights before the first date are 0). Weights
    are reset to their targets each period (drift within a period is ignored). With
    ``horizon=h > 1`` only every ``h``-th distinct date is traded (non-overlapping holding).
    Each (date, ticker) pair must appear at most once.
    """
    _check_horizon(horizon)
    d = np.asarray(dates).ravel()
    k = np.asarray(tickers).ravel()
    p = np.asarray(pred, dtype=float).ravel()
    r = np.asarray(realised, dtype=float).ravel()
    if not d.size == k.size == p.size == r.size:
        raise ValueError("dates, tickers, pred and realised must have the same length")
    udates, di = np.unique(d, return_inverse=True)
    utickers, ti = np.unique(k, return_inverse=True)
    if np.unique(di * len(utickers) + ti).size != d.size:
        raise ValueError("duplicate (date, ticker) rows")
    keep = di % horizon == 0
    udates = udates[::horizon]
    di, ti, p, r = di[keep] // horizon, ti[keep], p[keep], r[keep]

    counts = np.bincount(di, minlength=len(udates)).astype(float)
    weights = np.zeros((len(udates), len(utickers)))
    weights[di, ti] = positions(p, mode, threshold) / counts[di]
    gross = np.zeros_like(weights)
    gross[di, ti] = np.expm1(r)
    turnover = np.abs(np.diff(weights, axis=0, prepend=0.0)).sum(axis=1)
    rets = (weights * gross).sum(axis=1) - cost_bps / 1e4 * turnover
    return PanelStrategyResult(udates, rets, weights, utickers)


def buy_and_hold(
    dates: ArrayLike,
    tickers: ArrayLike,
    realised: ArrayLike,
    cost_bps: float = 0.0,
    horizon: int = 1,
) -> PanelStrategyResult:
    """The no-skill baseline: always long every ticker with a row, equal weight.

    The only buy-and-hold in the code base (baseline metrics and equity plot both use it). It
    is :func:`panel_strategy_returns` with every position long, so it pays the same costs as the
    strategy it is compared with: entering on the first date, and rebalancing when tickers come
    and go. One ticker without costs earns ``exp(r) - 1`` per period.
    """
    r = np.asarray(realised, dtype=float).ravel()
    # Any prediction above a zero threshold is long: ones make every position long.
    return panel_strategy_returns(
        dates, tickers, np.ones_like(r), r, "long_flat", 0.0, cost_bps, horizon
    )


def max_drawdown(returns: ArrayLike) -> float:
    """Largest peak-to-trough fall of the compounded equity curve, as a *positive* fraction.

    The curve starts at 1 before the first period, so a first-period loss counts. A fall from
    1.2 to 0.9 is 0.25 (i.e. -25%); 0.0 means the curve never fell below a previous peak.
    """
    r = np.asarray(returns, dtype=float).ravel()
    equity = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    peak = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peak))


def strategy_metrics(
    returns: ArrayLike, periods_per_year: float = 252, positions: ArrayLike | None = None
) -> dict[str, float]:
    """Performance metrics of per-period simple returns (keys in :data:`STRATEGY_METRICS`).

    - ``total_return``: compounded, ``Π(1 + r) - 1``.
    - ``annual_return``: geometric, ``(1 + total)^(periods_per_year / n) - 1`` (-1 if wiped out).
    - ``annual_volatility``: ``std(r, ddof=1) * sqrt(periods_per_year)``.
    - ``sharpe``: ``mean / std(ddof=1) * sqrt(periods_per_year)``, risk-free rate 0.
    - ``sortino``: ``mean / sqrt(mean(min(r, 0)^2)) * sqrt(periods_per_year)`` (target 0).
    - ``max_drawdown``: positive fraction, see :func:`max_drawdown`.
    - ``calmar``: ``annual_return / max_drawdown``.
    - ``hit_rate``: share of ``r > 0`` among periods with a nonzero position (any nonzero
      weight for 2-D ``positions``); without ``positions``, among periods with ``r != 0``.
    - ``turnover``: mean ``|position_t - position_{t-1}|`` (summed over columns for 2-D
      weights, flat before the first period); ``exposure``: mean ``|position|`` (gross).

    ``positions`` is 1-D (one asset) or 2-D ``(n_periods, n_assets)`` weights, e.g.
    :attr:`PanelStrategyResult.weights`. For ``h``-day non-overlapping periods pass
    ``periods_per_year=252 / h``. Undefined values (fewer than 2 periods, zero standard
    deviation, no losing period, no drawdown, no positions) are ``nan``; nothing raises.
    """
    r = np.asarray(returns, dtype=float).ravel()
    out = dict.fromkeys(STRATEGY_METRICS, math.nan)
    if r.size == 0:
        return out
    out.update(_return_metrics(r, periods_per_year))
    out.update(_position_metrics(r, positions))
    return out


def _return_metrics(r: NDArray[np.float64], periods_per_year: float) -> dict[str, float]:
    """Growth, risk and drawdown metrics of a non-empty return series (nan if undefined)."""
    n, out = r.size, {}
    growth = float(np.prod(1.0 + r))
    out["total_return"] = growth - 1.0
    out["annual_return"] = growth ** (periods_per_year / n) - 1.0 if growth > 0 else -1.0
    mean, ann = float(r.mean()), math.sqrt(periods_per_year)
    if n >= 2:
        sd = float(r.std(ddof=1))
        out["annual_volatility"] = sd * ann
        if sd > _ZERO_STD:
            out["sharpe"] = mean / sd * ann
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside > _ZERO_STD:
        out["sortino"] = mean / downside * ann
    out["max_drawdown"] = mdd = max_drawdown(r)
    if mdd > 0:
        out["calmar"] = out["annual_return"] / mdd
    return out


def _position_metrics(r: NDArray[np.float64], positions: ArrayLike | None) -> dict[str, float]:
    """Hit rate, turnover and exposure (the last two only when positions are given)."""
    out: dict[str, float] = {}
    if positions is None:
        active = r != 0
    else:
        pos = np.asarray(positions, dtype=float)
        pos2 = pos.reshape(r.size, -1) if pos.ndim <= 1 else pos
        if pos2.shape[0] != r.size:
            raise ValueError(f"positions has {pos2.shape[0]} periods but returns has {r.size}")
        active = np.any(pos2 != 0, axis=1)
        out["turnover"] = float(np.abs(np.diff(pos2, axis=0, prepend=0.0)).sum(axis=1).mean())
        out["exposure"] = float(np.abs(pos2).sum(axis=1).mean())
    if active.any():
        out["hit_rate"] = float(np.mean(r[active] > 0))
    return out
