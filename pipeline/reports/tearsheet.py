"""The strategy tearsheet: equity against buy-and-hold, drawdown, months, rolling Sharpe, costs."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from pipeline.evaluation.results import WalkForwardReport
from pipeline.reports.charts import BAD, BENCHMARK, MODEL, dates, figure, log_growth, new
from pipeline.reports.html import At, esc, grid, kpis, section
from pipeline.reports.series import (
    ROLLING_DAYS,
    Equity,
    Evidence,
    drawdown,
    equity,
    growth,
    monthly,
    rolling_sharpe,
)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
HEADLINE = (
    ("total return", "total_return", "%.1f"),
    ("annual return", "annual_return", "%.1f"),
    ("annual volatility", "annual_volatility", "%.1f"),
    ("Sharpe", "sharpe", ".2f"),
    ("Sortino", "sortino", ".2f"),
    ("max drawdown", "max_drawdown", "%.1f"),
    ("Calmar", "calmar", ".2f"),
    ("hit rate", "hit_rate", "%.1f"),
    ("turnover / period", "turnover", ".3f"),
    ("exposure", "exposure", "%.0f"),
)


def _equity_chart(eq: Equity) -> Figure:
    fig = new(9.0, 4.6)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot(eq.dates, growth(eq.net), color=MODEL, lw=1.2, label="strategy, after costs")
    top.plot(eq.dates, growth(eq.hold), color=BENCHMARK, lw=1.0, label="buy and hold")
    log_growth(top)
    top.set_ylabel("growth of 1 (log scale)")
    top.legend(loc="upper left")
    bottom.fill_between(eq.dates, drawdown(eq.net) * 100, 0, color=BAD, alpha=0.45, lw=0)
    bottom.set_ylabel("drawdown %")
    dates(bottom)
    return fig


def _monthly_chart(eq: Equity) -> Figure:
    years, table = monthly(eq.dates, eq.net)
    fig = new(9.0, 0.9 + 0.28 * len(years))
    ax = fig.add_subplot()
    ax.grid(False)
    pct = table * 100
    span = max(float(np.nanmax(np.abs(pct))) if np.isfinite(pct).any() else 1.0, 1e-9)
    image = ax.imshow(pct, cmap="RdYlGn", norm=TwoSlopeNorm(0, -span, span), aspect="auto")
    for (i, j), value in np.ndenumerate(pct):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7.5)
    ax.set_xticks(range(12), MONTHS)
    ax.set_yticks(range(len(years)), [str(y) for y in years])
    fig.colorbar(image, ax=ax, label="% in the month", shrink=0.9)
    return fig


def _rolling_chart(ev: Evidence, eq: Equity, pooled: float | None) -> Figure:
    fig = new(9.0, 2.6)
    ax = fig.add_subplot()
    ax.plot(eq.dates, rolling_sharpe(ev, eq.net), color=MODEL, lw=1.0, label="strategy")
    ax.plot(eq.dates, rolling_sharpe(ev, eq.hold), color=BENCHMARK, lw=0.8, label="buy and hold")
    if pooled is not None:
        ax.axhline(pooled, color=MODEL, ls="--", lw=0.8, label=f"pooled {pooled:.2f}")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("Sharpe, trailing 6 months")
    dates(ax)
    ax.legend(loc="upper left", ncols=3)
    return fig


def _costs_chart(eq: Equity, cost_bps: float) -> Figure:
    fig = new(9.0, 2.6)
    ax = fig.add_subplot()
    before, after = growth(eq.gross), growth(eq.net)
    ax.plot(eq.dates, before, color="#9467bd", lw=1.0, label="before costs")
    ax.plot(eq.dates, after, color=MODEL, lw=1.0, label=f"after {cost_bps:g} bps on turnover")
    ax.fill_between(eq.dates, after, before, color="#9467bd", alpha=0.2, lw=0, label="cost paid")
    log_growth(ax)
    ax.set_ylabel("growth of 1 (log scale)")
    dates(ax)
    ax.legend(loc="upper left", ncols=3)
    return fig


def tearsheet_section(anchor: str, wf: At, ev: Evidence) -> str:
    """The strategy traded on the predictions, on the test windows only."""
    report: WalkForwardReport = wf.obj
    cfg, eq = ev.strategy, equity(ev)
    held = f"every {ev.horizon} trading days, non-overlapping" if ev.horizon > 1 else "daily"
    intro = (
        f"{esc(cfg.mode.replace('_', '/'))} on the sign of the prediction (threshold "
        f"{cfg.threshold:g}), rebalanced {held}, {cfg.cost_bps:g} bps of costs per unit of "
        "turnover (configured). Test windows only; the numbers are pooled over them."
    )
    charts = [
        figure(
            f"{anchor}-equity",
            "Equity curve against buy-and-hold, and drawdown",
            lambda: _equity_chart(eq),
        ),
        figure(
            f"{anchor}-monthly",
            "Monthly returns of the strategy, after costs (%)",
            lambda: _monthly_chart(eq),
        ),
        figure(
            f"{anchor}-rolling",
            f"Rolling Sharpe ratio ({ROLLING_DAYS} trading days)",
            lambda: _rolling_chart(ev, eq, report.sharpe),
        ),
        figure(
            f"{anchor}-costs",
            "What costs took: the strategy before and after them",
            lambda: _costs_chart(eq, cfg.cost_bps),
        ),
    ]
    numbers = kpis((title, wf.num(key, spec=spec)) for title, key, spec in HEADLINE)
    body = numbers + charts[0] + grid(charts[1], charts[2]) + charts[3]
    return section(anchor, "Strategy tearsheet", body, intro)
