"""Cross-sectional portfolio backtest of a panel's out-of-sample predictions.

Input rows are ``(date, ticker, prediction, realised)`` with ``realised`` the forward log return
over the horizon ``h`` (the timing of :mod:`pipeline.evaluation.strategy`: a position taken at
``t``'s close earns the return from ``t`` to ``t+h``). Conventions:

- **Periods.** Only every ``h``-th test date is used (as the sign strategy does), so ``h``-day
  returns never overlap; metrics are annualised with ``periods_per_year`` (``252 / h``).
- **Rebalancing.** Every ``ceil(rebalance_days / h)`` periods, i.e. ``rebalance_days`` rounded
  up to a multiple of the horizon. In between, the rebalance's weights are held unchanged
  (drift is ignored, as in the sign strategy); a held ticker without a row on a date has
  weight 0 there.
- **Books.** Long the ``top_k`` highest predictions, short the ``bottom_k`` lowest (long-only
  with ``bottom_k = 0``); the long book sums to +1 and the short book to -1 (dollar neutral,
  gross 2). ``equal`` weights, or ``score``: proportional to the prediction's distance from
  the date's mean (its positive part for the long book, negative part for the short book;
  equal if that is zero everywhere). **Ties share:** tickers tied at a book's boundary share
  its last places equally (two tied for one place are each half a member), so no metric
  depends on how tickers are named or ordered; ``tied_rebalances`` counts the rebalances where
  that happened. A ticker tied into both books holds their difference. With fewer than
  ``top_k + bottom_k`` tickers on a rebalance date each side gets at most half of them
  (rounded down; all of them for a long-only book), and the date counts as clamped.
- **Returns and costs.** Each ticker earns ``expm1(realised)``: a portfolio's simple return is
  exactly the weighted sum of its members' simple returns (a sum of log returns is not).
  Costs are ``cost_bps / 1e4 * sum |w_t - w_{t-1}|``, flat before the first period.
- **Forecast diagnostics** (rank IC, quantiles) use every period's cross-section, whatever
  ``rebalance_days``. Quintiles: a ticker goes to the bucket holding its mid-rank percentile
  ``(rank - 0.5) / n``, so each gets ``n / 5`` names when ``n`` is a multiple of 5. A panel of
  fewer than 5 tickers gets one bucket per ticker instead (3 tickers: terciles), since 5
  buckets over 3 names would leave two of them empty on every date.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipeline.evaluation.forecast import average_ranks, rank_ic
from pipeline.evaluation.results import PortfolioReport
from pipeline.evaluation.strategy import strategy_metrics
from pipeline.settings import PortfolioConfig

N_QUANTILES = 5


class Grid(NamedTuple):
    """The traded test rows as ``(period, ticker)`` matrices."""

    dates: NDArray[np.generic]  # one per period: every horizon-th distinct date
    tickers: NDArray[np.generic]
    pred: NDArray[np.float64]
    simple: NDArray[np.float64]  # expm1 of the realised log return; 0 where absent
    present: NDArray[np.bool_]  # the ticker has a row (with a finite prediction) that date


def grid(
    dates: ArrayLike, tickers: ArrayLike, pred: ArrayLike, realised: ArrayLike, horizon: int
) -> Grid:
    """Rows as matrices over every ``horizon``-th distinct date; (date, ticker) is unique."""
    d, k = np.asarray(dates).ravel(), np.asarray(tickers).ravel()
    p, r = np.asarray(pred, dtype=float).ravel(), np.asarray(realised, dtype=float).ravel()
    if not d.size == k.size == p.size == r.size:
        raise ValueError("dates, tickers, pred and realised must have the same length")
    udates, di = np.unique(d, return_inverse=True)
    utickers, ti = np.unique(k, return_inverse=True)
    if np.unique(di * len(utickers) + ti).size != d.size:
        raise ValueError("duplicate (date, ticker) rows")
    keep = (di % horizon == 0) & np.isfinite(p) & np.isfinite(r)
    shape = (len(udates[::horizon]), len(utickers))
    at = (di[keep] // horizon, ti[keep])
    pm, sm, present = np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=bool)
    pm[at], sm[at], present[at] = p[keep], np.expm1(r[keep]), True
    return Grid(udates[::horizon], utickers, pm, sm, present)


def book_sizes(n: int, top_k: int, bottom_k: int) -> tuple[int, int]:
    """Long and short counts among ``n`` tickers (each side at most half when both don't fit)."""
    if top_k + bottom_k <= n:
        return top_k, bottom_k
    half = n // 2 if bottom_k else n
    return min(top_k, half), min(bottom_k, half)


def membership(pred: NDArray[np.float64], places: int) -> tuple[NDArray[np.float64], bool]:
    """How much of a member of the ``places`` highest predictions each ticker is (0..1).

    Tickers strictly above the boundary value are whole members; the ``m`` tickers equal to
    it share the places left equally. The flag says whether a tie crossed the boundary.
    """
    if places <= 0 or pred.size == 0:
        return np.zeros(pred.size), False
    boundary = np.sort(pred)[::-1][places - 1]
    above, tied = pred > boundary, pred == boundary
    share = (places - int(above.sum())) / int(tied.sum())
    return np.where(above, 1.0, np.where(tied, share, 0.0)), bool(share < 1.0)


def _book(
    score: NDArray[np.float64], member: NDArray[np.float64], weighting: str
) -> NDArray[np.float64]:
    """One book's weights over its (fractional) members, summing to 1."""
    positive = np.maximum(score, 0.0) * member
    if weighting == "equal" or positive.sum() <= 0:
        return member / member.sum()
    return positive / positive.sum()


class Rebalance(NamedTuple):
    """One rebalance's target weights over every ticker (0 where absent), and what it met."""

    weights: NDArray[np.float64]
    clamped: bool
    tied: bool


def target_weights(
    pred: NDArray[np.float64], present: NDArray[np.bool_], cfg: PortfolioConfig
) -> Rebalance:
    """Long the top, short the bottom, tied boundary names sharing their places."""
    w = np.zeros(pred.size)
    names = np.flatnonzero(present)
    n_long, n_short = book_sizes(names.size, cfg.top_k, cfg.bottom_k)
    p = pred[names]
    score = p - (p.mean() if names.size else 0.0)
    long_member, long_tied = membership(p, n_long)
    short_member, short_tied = membership(-p, n_short)
    if n_long:
        w[names] += _book(score, long_member, cfg.weighting)
    if n_short:
        w[names] -= _book(-score, short_member, cfg.weighting)
    clamped = (n_long, n_short) != (cfg.top_k, cfg.bottom_k)
    return Rebalance(w, clamped, long_tied or short_tied)


class PortfolioSeries(NamedTuple):
    """Per-period portfolio returns, for the metrics and the plots."""

    dates: NDArray[np.generic]
    net: NDArray[np.float64]  # after costs
    long: NDArray[np.float64]  # the long book's contribution, before costs
    short: NDArray[np.float64]  # the short book's contribution (its weights are negative)
    weights: NDArray[np.float64]  # (periods, tickers)
    rebalances: int
    clamped: int
    tied: int


def portfolio_series(g: Grid, cfg: PortfolioConfig, horizon: int) -> PortfolioSeries:
    """Rebalance, hold in between, and charge costs on turnover (module docstring)."""
    every = -(-cfg.rebalance_days // horizon)
    w = np.zeros_like(g.pred)
    target = np.zeros(g.pred.shape[1])
    rebalances: list[Rebalance] = []
    for t in range(len(g.dates)):
        if t % every == 0:
            rebalances.append(target_weights(g.pred[t], g.present[t], cfg))
            target = rebalances[-1].weights
        w[t] = np.where(g.present[t], target, 0.0)
    long = (np.maximum(w, 0.0) * g.simple).sum(axis=1)
    short = (np.minimum(w, 0.0) * g.simple).sum(axis=1)
    turnover = np.abs(np.diff(w, axis=0, prepend=0.0)).sum(axis=1)
    net = long + short - cfg.cost_bps / 1e4 * turnover
    clamped, tied = (sum(int(getattr(r, k)) for r in rebalances) for k in ("clamped", "tied"))
    return PortfolioSeries(g.dates, net, long, short, w, len(rebalances), clamped, tied)


def long_short_spread(s: PortfolioSeries) -> float:
    """Mean of (long book's weighted mean return - short book's), over periods with both."""
    gross_long = np.maximum(s.weights, 0.0).sum(axis=1)
    gross_short = -np.minimum(s.weights, 0.0).sum(axis=1)
    both = (gross_long > 0) & (gross_short > 0)
    if not both.any():
        return math.nan
    spread = s.long[both] / gross_long[both] + s.short[both] / gross_short[both]
    return float(spread.mean())


def quantile_returns(g: Grid, n_quantiles: int = N_QUANTILES) -> list[float]:
    """Mean simple return of each prediction quantile, bottom to top (module docstring): at
    most ``n_quantiles`` buckets, and no more than the panel has tickers."""
    n_quantiles = min(n_quantiles, len(g.tickers))
    per_date = np.full((len(g.dates), n_quantiles), np.nan)
    for t in range(len(g.dates)):
        names = g.present[t]
        n = int(names.sum())
        if n < 2:
            continue
        bucket = np.floor((average_ranks(g.pred[t, names]) - 0.5) * n_quantiles / n)
        ret = g.simple[t, names]
        for b in range(n_quantiles):
            if (bucket == b).any():
                per_date[t, b] = ret[bucket == b].mean()
    counts = np.isfinite(per_date).sum(axis=0)
    sums = np.nansum(per_date, axis=0)
    return [float(s / c) if c else math.nan for s, c in zip(sums, counts, strict=True)]


def rank_ic_series(g: Grid) -> NDArray[np.float64]:
    """Spearman correlation of prediction and return across tickers, per period (nan if
    fewer than 2 tickers or either side constant)."""
    return np.array(
        [rank_ic(g.simple[t, g.present[t]], g.pred[t, g.present[t]]) for t in range(len(g.dates))]
    )


def ic_stats(ics: NDArray[np.float64], periods_per_year: float) -> dict[str, float]:
    """Mean, IR (mean / std * sqrt(periods per year)) and t-stat of the defined per-date ICs."""
    v = ics[np.isfinite(ics)]
    out = {"rank_ic": math.nan, "rank_ic_ir": math.nan, "rank_ic_tstat": math.nan}
    if v.size:
        out["rank_ic"] = float(v.mean())
    sd = float(v.std(ddof=1)) if v.size >= 2 else 0.0
    if sd > 0:
        out["rank_ic_ir"] = out["rank_ic"] / sd * math.sqrt(periods_per_year)
        out["rank_ic_tstat"] = out["rank_ic"] / (sd / math.sqrt(v.size))
    return out


def portfolio_report(
    dates: ArrayLike,
    tickers: ArrayLike,
    pred: ArrayLike,
    realised: ArrayLike,
    cfg: PortfolioConfig,
    horizon: int,
    periods_per_year: float,
) -> PortfolioReport | None:
    """The panel's portfolio block, or None for fewer than two tickers."""
    g = grid(dates, tickers, pred, realised, horizon)
    if len(g.tickers) < 2:
        return None
    s = portfolio_series(g, cfg, horizon)
    m = strategy_metrics(s.net, periods_per_year, positions=s.weights)
    ics, quantiles = rank_ic_series(g), quantile_returns(g)
    return PortfolioReport(
        **cfg.model_dump(),
        rebalance_every=-(-cfg.rebalance_days // horizon) * horizon,
        n_tickers=len(g.tickers),
        periods=len(g.dates),
        rebalances=s.rebalances,
        clamped_rebalances=s.clamped,
        tied_rebalances=s.tied,
        **{k: m[k] for k in ("sharpe", "annual_return", "annual_volatility", "max_drawdown")},
        turnover=m["turnover"],
        hit_rate=m["hit_rate"],
        long_short_spread=long_short_spread(s),
        quantile_returns=quantiles,
        n_quantiles=len(quantiles),
        **ic_stats(ics, periods_per_year),
        rank_ic_dates=int(np.isfinite(ics).sum()),
    )
