"""Write a walk-forward report as files: metrics.json, folds.csv, predictions and the plots.

Two plots always (equity curve, predicted vs realised); a panel's portfolio block adds two
more (cumulative long/short returns, quintile returns: fewer buckets, and a note saying so,
for a panel of fewer than five tickers).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from pipeline.atomic import atomic_write, atomic_write_text
from pipeline.evaluation.portfolio import N_QUANTILES, PortfolioSeries
from pipeline.evaluation.report import OutOfSample, equity_series, portfolio_plot_series
from pipeline.evaluation.results import FoldWindow, PortfolioReport, WalkForwardReport
from pipeline.settings import StrategyConfig

log = logging.getLogger(__name__)


def _equity_plot(path: Path, dates: np.ndarray, strat: np.ndarray, bh: np.ndarray) -> None:
    eq_s, eq_b = np.cumprod(1 + strat), np.cumprod(1 + bh)
    drawdown = eq_s / np.maximum.accumulate(eq_s) - 1
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(dates, eq_s, label="strategy (after costs)")
    top.plot(dates, eq_b, label="buy and hold", alpha=0.7)
    top.set_yscale("log")
    top.set_ylabel("equity (log scale)")
    top.legend(loc="upper left")
    top.set_title("Walk-forward test windows only")
    bottom.fill_between(dates, drawdown, 0, color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown")
    _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> None:
    # The temporary name has no .png suffix, so the format is given explicitly.
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)


def _scatter_plot(path: Path, oos: OutOfSample) -> None:
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(oos.y_pred, oos.y_true, s=4, alpha=0.4)
    lim = float(np.nanmax(np.abs(oos.y_true))) if oos.y_true.size else 1.0
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("predicted log return")
    ax.set_ylabel("realised log return")
    ax.set_title("Predicted vs realised (test rows)")
    _save(fig, path)


def _portfolio_returns_plot(path: Path, s: PortfolioSeries, block: PortfolioReport) -> None:
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.plot(s.dates, np.cumprod(1 + s.long), label=f"long book (top {block.top_k})")
    if block.bottom_k:
        ax.plot(
            s.dates,
            np.cumprod(1 + s.short),
            label=f"short book (bottom {block.bottom_k}, as shorted)",
        )
    ax.plot(s.dates, np.cumprod(1 + s.net), label=f"portfolio after {block.cost_bps:g} bps costs")
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.set_ylabel("cumulative return (growth of 1)")
    ax.legend(loc="upper left")
    ax.set_title(f"Cross-sectional portfolio, {block.n_tickers} tickers (test windows only)")
    _save(fig, path)


# What a bucket is called (and its plural) for each count a portfolio block can have.
_BUCKETS = {
    1: ("bucket", "buckets"),
    2: ("half", "halves"),
    3: ("tercile", "terciles"),
    4: ("quartile", "quartiles"),
    5: ("quintile", "quintiles"),
}


def quantile_caption(block: PortfolioReport) -> tuple[str, str | None]:
    """The bucket's name (quintile, tercile...) and, when the panel had too few tickers for
    quintiles, a note saying so: the plot must not pass terciles off as quintiles."""
    name, names = _BUCKETS.get(block.n_quantiles, ("quantile", "quantiles"))
    if block.n_quantiles >= N_QUANTILES:
        return name, None
    return name, (
        f"only {block.n_tickers} tickers: {block.n_quantiles} {names} (one ticker each on a "
        f"full date), not {N_QUANTILES} {_BUCKETS[N_QUANTILES][1]}"
    )


def _quantile_plot(path: Path, block: PortfolioReport) -> None:
    values = [np.nan if v is None else v * 1e4 for v in block.quantile_returns]
    name, note = quantile_caption(block)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar([f"Q{q}" for q in range(1, len(values) + 1)], values, color="tab:blue")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel(f"prediction {name} (bottom to top)")
    ax.set_ylabel("mean forward return (bps)")
    ic = math.nan if block.rank_ic is None else block.rank_ic
    ax.set_title(f"{name.capitalize()} returns (mean rank IC {ic:.3f})")
    if note is not None:
        log.warning("portfolio_quantiles.png: %s", note)
        ax.text(0.5, 0.97, note, transform=ax.transAxes, ha="center", va="top", fontsize=8)
    _save(fig, path)


def _portfolio_plots(
    out_dir: Path, report: WalkForwardReport, oos: OutOfSample, horizon: int
) -> list[Path]:
    if report.portfolio is None:
        return []
    returns, quantiles = out_dir / "portfolio_returns.png", out_dir / "portfolio_quantiles.png"
    series = portfolio_plot_series(oos, report.portfolio, horizon)
    _portfolio_returns_plot(returns, series, report.portfolio)
    _quantile_plot(quantiles, report.portfolio)
    return [returns, quantiles]


def write_report_files(
    out_dir: Path, report: WalkForwardReport, oos: OutOfSample, cfg: StrategyConfig, horizon: int
) -> list[Path]:
    """Write every report file into ``out_dir`` and return their paths.

    Each file is written atomically, so a crash leaves whole files (old or new), never half.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = report.model_dump(mode="json")
    metrics = atomic_write_text(
        out_dir / "metrics.json", json.dumps(doc, indent=2, allow_nan=False)
    )
    # folds.csv is the fold manifest: each fold's windows and row counts, no metrics.
    folds = pl.DataFrame([{k: f[k] for k in FoldWindow.model_fields} for f in report.folds])
    folds_csv = atomic_write(out_dir / "folds.csv", folds.write_csv)
    preds = pl.DataFrame(
        {
            "ticker": oos.tickers,
            "date": oos.dates,
            "fold": oos.fold,
            "prediction": oos.y_pred,
            "realised": oos.y_true,
        }
    )
    preds_parquet = atomic_write(out_dir / "predictions.parquet", preds.write_parquet)
    equity = out_dir / "equity_curve.png"
    _equity_plot(equity, *equity_series(oos, cfg, horizon))
    scatter = out_dir / "predicted_vs_realised.png"
    _scatter_plot(scatter, oos)
    portfolio = _portfolio_plots(out_dir, report, oos, horizon)
    return [metrics, folds_csv, preds_parquet, equity, scatter, *portfolio]
