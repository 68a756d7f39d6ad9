"""A panel's cross-sectional portfolio: quantile returns, rank IC over time, the books."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from pipeline.evaluation.report_files import quantile_caption
from pipeline.evaluation.results import PortfolioReport
from pipeline.reports.charts import BAD, BENCHMARK, MODEL, figure, new
from pipeline.reports.charts import dates as dates_axis
from pipeline.reports.html import At, esc, grid, kpis, section
from pipeline.reports.series import Evidence, books, growth, moving_mean, rank_ics

ROLLING_PERIODS = 63  # a quarter of trading days, for the rank IC's moving mean
HEADLINE = (
    ("Sharpe", "sharpe", ".2f"),
    ("annual return", "annual_return", "%.1f"),
    ("annual volatility", "annual_volatility", "%.1f"),
    ("max drawdown", "max_drawdown", "%.1f"),
    ("turnover / period", "turnover", ".2f"),
    ("hit rate", "hit_rate", "%.1f"),
    ("long-short spread", "long_short_spread", "%.3f"),
    ("mean rank IC", "rank_ic", ".4f"),
    ("rank IC IR", "rank_ic_ir", ".2f"),
    ("rank IC t-stat", "rank_ic_tstat", ".2f"),
)


def _quantile_chart(block: PortfolioReport) -> Figure:
    name, caveat = quantile_caption(block)
    values = [np.nan if v is None else v * 1e4 for v in block.quantile_returns]
    fig = new(5.2, 3.0)
    ax = fig.add_subplot()
    colours = [BAD if v < 0 else MODEL for v in np.nan_to_num(values)]
    ax.bar([f"Q{q}" for q in range(1, len(values) + 1)], values, color=colours)
    ax.axhline(0, color=BENCHMARK, lw=0.6)
    ax.set_xlabel(f"prediction {name} (bottom to top)")
    ax.set_ylabel("mean forward return (bps)")
    if caveat is not None:
        ax.set_title(caveat, fontsize=7.5)
    return fig


def _rank_ic_chart(ev: Evidence, mean: float | None) -> Figure:
    dates, ics = rank_ics(ev)
    fig = new(5.2, 3.0)
    ax = fig.add_subplot()
    ax.plot(dates, ics, color=BENCHMARK, lw=0.4, alpha=0.6, label="per date")
    window = min(ROLLING_PERIODS, max(1, ics.size))
    moving = moving_mean(ics, window)
    ax.plot(dates, moving, color=MODEL, lw=1.2, label=f"mean of the last {window}")
    if mean is not None:
        ax.axhline(mean, color=MODEL, ls="--", lw=0.8, label=f"mean {mean:.3f}")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("Spearman rank IC")
    dates_axis(ax)
    ax.legend(loc="lower left", ncols=3)
    return fig


def _books_chart(ev: Evidence, block: PortfolioReport) -> Figure:
    s = books(ev, block)
    dates = np.asarray(s.dates, dtype="datetime64[D]")
    fig = new(9.0, 3.2)
    ax = fig.add_subplot()
    ax.plot(dates, growth(s.long), color="#2ca02c", lw=1.0, label=f"long book (top {block.top_k})")
    if block.bottom_k:
        ax.plot(
            dates,
            growth(s.short),
            color=BAD,
            lw=1.0,
            label=f"short book (bottom {block.bottom_k}, as shorted)",
        )
    ax.plot(
        dates, growth(s.net), color=MODEL, lw=1.4, label=f"long/short after {block.cost_bps:g} bps"
    )
    ax.axhline(1.0, color=BENCHMARK, lw=0.6)
    ax.set_ylabel("growth of 1")
    dates_axis(ax)
    ax.legend(loc="upper left", ncols=3)
    return fig


def panel_section(anchor: str, wf: At, ev: Evidence) -> str:
    """The portfolio block of a panel (the caller leaves it out for a single ticker)."""
    block: PortfolioReport = wf.obj.portfolio
    at = wf.at("portfolio")
    books_text = f"top {block.top_k}" + (
        f" and short the bottom {block.bottom_k}" if block.bottom_k else ""
    )
    intro = (
        f"Each rebalance (every {at.num('rebalance_every', spec='d')} trading days) goes long the "
        f"{esc(books_text)} predictions of {at.num('n_tickers', spec='d')} tickers, "
        f"{esc(block.weighting)} weights, {at.num('cost_bps', spec='g')} bps of costs; "
        f"{at.num('rebalances', spec='d')} rebalances, {at.num('tied_rebalances', spec='d')} "
        "with tied predictions at a book's boundary."
    )
    charts = grid(
        figure(
            f"{anchor}-quantiles",
            "Mean forward return by prediction quantile",
            lambda: _quantile_chart(block),
        ),
        figure(
            f"{anchor}-rankic",
            "Rank IC per date, and its moving mean",
            lambda: _rank_ic_chart(ev, block.rank_ic),
        ),
    )
    long_short = figure(
        f"{anchor}-books",
        "Cumulative return of each book and of the portfolio",
        lambda: _books_chart(ev, block),
    )
    numbers = kpis((title, at.num(key, spec=spec)) for title, key, spec in HEADLINE)
    return section(anchor, "Cross-sectional portfolio", numbers + charts + long_short, intro)
