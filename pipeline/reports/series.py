"""The series behind the charts: what the typed results summarise, drawn out over time.

Each series comes from the out-of-sample rows through the very functions that computed the
report's numbers (the strategy's and buy-and-hold's returns, the portfolio's books, the
per-date rank IC, the walk-forward interval bounds), so a chart cannot tell a different
story from the JSON: compounding the strategy series gives the report's ``total_return``,
and the rolling Sharpe is :func:`strategy_metrics`'s Sharpe on each window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.evaluation.interval_report import IntervalSetup
from pipeline.evaluation.intervals import interval_metrics, walk_forward_bounds
from pipeline.evaluation.portfolio import PortfolioSeries, grid, rank_ic_series
from pipeline.evaluation.report import (
    OutOfSample,
    equity_series,
    periods_per_year,
    portfolio_plot_series,
)
from pipeline.evaluation.results import PortfolioReport
from pipeline.evaluation.strategy import strategy_metrics
from pipeline.settings import StrategyConfig

ROLLING_DAYS = 126  # six months of trading days


@dataclass(frozen=True)
class Evidence:
    """The out-of-sample rows of a walk-forward report and how they were traded and judged."""

    oos: OutOfSample
    strategy: StrategyConfig
    horizon: int
    intervals: IntervalSetup | None = None
    selected: list[list[str]] | None = None
    """Features the selector kept in each fold (None: not recorded, as in `backtest`)."""
    columns: tuple[str, ...] = ()

    @property
    def periods_per_year(self) -> float:
        return periods_per_year(self.strategy, self.horizon)


@dataclass(frozen=True)
class Equity:
    """Per traded period: the date, the strategy's net and gross return, buy-and-hold's."""

    dates: np.ndarray
    net: np.ndarray
    gross: np.ndarray
    hold: np.ndarray


def equity(ev: Evidence) -> Equity:
    """The strategy's returns after and before costs, and buy-and-hold's (after costs)."""
    dates, net, hold = equity_series(ev.oos, ev.strategy, ev.horizon)
    free = ev.strategy.model_copy(update={"cost_bps": 0.0})
    gross = equity_series(ev.oos, free, ev.horizon)[1]
    return Equity(np.asarray(dates, dtype="datetime64[D]"), net, gross, hold)


def growth(returns: np.ndarray) -> np.ndarray:
    """The compounded equity curve of simple returns, starting from 1."""
    return np.cumprod(1.0 + np.asarray(returns, dtype=float))


def drawdown(returns: np.ndarray) -> np.ndarray:
    """Fall from the running peak of the equity curve (0 at a peak, negative below it)."""
    curve = np.concatenate(([1.0], growth(returns)))
    return (curve / np.maximum.accumulate(curve) - 1.0)[1:]


def monthly(dates: np.ndarray, returns: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Compounded return of each calendar month: (years, a years x 12 array, NaN where no
    period started in that month)."""
    months = np.asarray(dates, dtype="datetime64[M]").astype(int)  # months since 1970-01
    years = sorted({int(m // 12) + 1970 for m in months})
    table = np.full((len(years), 12), np.nan)
    for m in np.unique(months):
        year, month = int(m // 12) + 1970, int(m % 12)
        table[years.index(year), month] = np.prod(1.0 + returns[months == m]) - 1.0
    return years, table


def rolling_sharpe(ev: Evidence, returns: np.ndarray) -> np.ndarray:
    """:func:`strategy_metrics`'s Sharpe over the last six months of periods, at each period
    (NaN until a full window)."""
    window = max(2, ROLLING_DAYS // ev.horizon)
    out = np.full(returns.size, np.nan)
    for end in range(window, returns.size + 1):
        out[end - 1] = strategy_metrics(returns[end - window : end], ev.periods_per_year)["sharpe"]
    return out


def moving_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the defined values among the last ``window`` (NaN until a full window)."""
    out = np.full(values.size, np.nan)
    for end in range(window, values.size + 1):
        chunk = values[end - window : end]
        if np.isfinite(chunk).any():
            out[end - 1] = float(np.nanmean(chunk))
    return out


def coverage_by_fold(ev: Evidence, level: float) -> tuple[list[int], list[float]]:
    """Each scored fold's coverage at ``level``: its rows inside bands calibrated on earlier
    folds only, the bounds and the measure the report's pooled coverage uses."""
    o, setup = ev.oos, ev.intervals
    scale = None if setup is None else setup.scale
    lower, upper = walk_forward_bounds(o.fold, o.y_true, o.y_pred, level, scale)
    folds, values = [], []
    for k in np.unique(o.fold)[1:]:  # the first fold has nothing before it to calibrate on
        rows = o.fold == k
        folds.append(int(k))
        values.append(interval_metrics(o.y_true[rows], lower[rows], upper[rows], level)["coverage"])
    return folds, values


def rank_ics(ev: Evidence) -> tuple[np.ndarray, np.ndarray]:
    """(dates, rank IC per period) of a panel: the values the report's mean rank IC is of."""
    o = ev.oos
    g = grid(o.dates, o.tickers, o.y_pred, o.y_true, ev.horizon)
    return np.asarray(g.dates, dtype="datetime64[D]"), rank_ic_series(g)


def books(ev: Evidence, block: PortfolioReport) -> PortfolioSeries:
    """The portfolio's per-period long, short and net returns (the block's own series)."""
    return portfolio_plot_series(ev.oos, block, ev.horizon)


def kept_matrix(ev: Evidence) -> tuple[list[str], np.ndarray]:
    """Features by folds kept (1) or dropped (0), most often kept first; features never kept
    are left out (listed in the caption by count)."""
    selected = ev.selected or []
    names = [c for c in ev.columns if any(c in kept for kept in selected)]
    matrix = np.array([[c in kept for kept in selected] for c in names], dtype=float)
    order = sorted(range(len(names)), key=lambda i: (-matrix[i].sum(), names[i]))
    return [names[i] for i in order], matrix[order] if names else matrix
