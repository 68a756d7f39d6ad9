"""The one evaluation path: every "how good is it" answer, per fold and pooled.

Tuning (each trial's folds), training (the winner's report), the promotion gate (the
incumbent's folds) and backtest all score out-of-sample predictions here, so one question has
one answer wherever it is asked:

- :func:`evaluate`: forecast and strategy metrics of one set of test rows (a fold, or all).
- :func:`fold_mean`: the mean of per-fold metrics (the tuning objective, the summary's
  ``metrics``, each candidate's metrics).
- :func:`baselines`: zero-return, last-return and buy-and-hold on the same test rows, pooled.
- :func:`walk_forward_report`: pooled metrics, baselines, the honesty metrics and every fold,
  plus a panel's cross-sectional portfolio (:mod:`pipeline.evaluation.portfolio`) and the
  conformal prediction intervals' coverage (:mod:`pipeline.evaluation.intervals`).

Pure computation on arrays; :mod:`pipeline.evaluation.report_files` writes the files.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.domain import Fold
from pipeline.evaluation.forecast import forecast_metrics
from pipeline.evaluation.honesty import TrialSet, stationary_bootstrap_sharpe_ci
from pipeline.evaluation.interval_report import IntervalSetup, interval_fields
from pipeline.evaluation.portfolio import PortfolioSeries, grid, portfolio_report, portfolio_series
from pipeline.evaluation.results import (
    Baselines,
    FoldReport,
    ForecastMetrics,
    Metrics,
    PortfolioReport,
    StrategyMetrics,
    WalkForwardReport,
)
from pipeline.evaluation.strategy import (
    PanelStrategyResult,
    buy_and_hold,
    panel_strategy_returns,
    strategy_metrics,
)
from pipeline.settings import PortfolioConfig, StrategyConfig


@dataclass(frozen=True)
class OutOfSample:
    """Test rows of every fold, concatenated in fold order."""

    fold: np.ndarray
    dates: np.ndarray
    tickers: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    last_return: np.ndarray

    def select(self, mask: np.ndarray) -> OutOfSample:
        """The rows where ``mask`` holds (e.g. one fold's)."""
        columns = (getattr(self, f.name) for f in dataclasses.fields(self))
        return OutOfSample(*(column[mask] for column in columns))


def periods_per_year(cfg: StrategyConfig, horizon: int) -> float:
    """Strategy periods a year: an ``h``-day target is traded every ``h`` days."""
    return cfg.periods_per_year / horizon


def per_period_sharpe(metrics: Metrics, cfg: StrategyConfig, horizon: int) -> float:
    """The annualised ``metrics.sharpe`` per period, as the deflated Sharpe wants it (or NaN)."""
    if metrics.sharpe is None:
        return math.nan
    return metrics.sharpe / math.sqrt(periods_per_year(cfg, horizon))


def _trade(
    oos: OutOfSample, pred: np.ndarray, cfg: StrategyConfig, horizon: int
) -> PanelStrategyResult:
    return panel_strategy_returns(
        oos.dates,
        oos.tickers,
        pred,
        oos.y_true,
        mode=cfg.mode,
        threshold=cfg.threshold,
        cost_bps=cfg.cost_bps,
        horizon=horizon,
    )


def _strategy(res: PanelStrategyResult, cfg: StrategyConfig, horizon: int) -> dict[str, float]:
    return strategy_metrics(res.returns, periods_per_year(cfg, horizon), positions=res.weights)


def _forecast(oos: OutOfSample, pred: np.ndarray) -> dict[str, float]:
    # Panels: correlations are taken per date (cross-sectionally), then averaged.
    groups = oos.dates if len(np.unique(oos.tickers)) > 1 else None
    return forecast_metrics(oos.y_true, pred, groups)


def _evaluate(
    oos: OutOfSample, cfg: StrategyConfig, horizon: int
) -> tuple[Metrics, PanelStrategyResult]:
    traded = _trade(oos, oos.y_pred, cfg, horizon)
    return Metrics(**_forecast(oos, oos.y_pred), **_strategy(traded, cfg, horizon)), traded


def evaluate(oos: OutOfSample, cfg: StrategyConfig, horizon: int) -> Metrics:
    """Forecast and strategy metrics of one set of test rows (a fold, or all of them)."""
    return _evaluate(oos, cfg, horizon)[0]


def fold_mean(per_fold: Sequence[Metrics]) -> Metrics:
    """Unweighted mean of each metric over folds; a fold where it is undefined is left out.

    The only fold mean: the tuning objective and the pruner's running value, each candidate's
    metrics and the summary's ``metrics`` all come from here, so the champion's primary value
    is its ``metrics`` entry. Unweighted because every fold has the same test length. A
    metric undefined in every fold (or no fold at all) is ``None``.
    """
    values: dict[str, float | None] = {}
    for name in Metrics.model_fields:
        defined = [v for v in (getattr(f, name) for f in per_fold) if v is not None]
        values[name] = float(np.mean(defined)) if defined else None
    return Metrics(**values)


def _buy_and_hold(oos: OutOfSample, cfg: StrategyConfig, horizon: int) -> PanelStrategyResult:
    return buy_and_hold(oos.dates, oos.tickers, oos.y_true, cfg.cost_bps, horizon)


def baselines(oos: OutOfSample, cfg: StrategyConfig, horizon: int) -> Baselines:
    """No-skill answers pooled over the same test rows: the only baselines anywhere."""
    momentum = dataclasses.replace(oos, y_pred=oos.last_return)
    return Baselines(
        zero_return=ForecastMetrics(**_forecast(oos, np.zeros_like(oos.y_true))),
        last_return=evaluate(momentum, cfg, horizon),
        buy_and_hold=StrategyMetrics(**_strategy(_buy_and_hold(oos, cfg, horizon), cfg, horizon)),
    )


def fold_report(fold: Fold, metrics: Metrics) -> FoldReport:
    """A fold's windows next to the metrics of its test rows."""
    return FoldReport(
        fold=fold.fold,
        train_start=str(fold.train_start),
        train_end=str(fold.train_end),
        test_start=str(fold.test_start),
        test_end=str(fold.test_end),
        train_rows=fold.train_rows,
        test_rows=fold.test_rows,
        **metrics.model_dump(),
    )


def walk_forward_report(
    oos: OutOfSample,
    folds: Sequence[Fold],
    cfg: StrategyConfig,
    horizon: int,
    trials: TrialSet,
    seed: int = 0,
    portfolio: PortfolioConfig | None = None,
    intervals: IntervalSetup | None = None,
) -> WalkForwardReport:
    """Pooled metrics over every test row, baselines on the same rows, honesty and each fold.

    ``trials`` are the trials this model was picked from (all candidates'): their number and
    the variance of their Sharpes set how high a Sharpe luck alone would reach. A panel (two
    or more tickers) also gets its ``portfolio`` block (default :class:`PortfolioConfig`).
    With ``intervals``, the conformal intervals' walk-forward coverage, width and Winkler score
    per level (and plain split conformal next to the scaled method).
    """
    pooled, traded = _evaluate(oos, cfg, horizon)
    ci = stationary_bootstrap_sharpe_ci(
        traded.returns,
        n_boot=cfg.bootstrap_samples,
        seed=seed,
        periods_per_year=periods_per_year(cfg, horizon),
    )
    return WalkForwardReport(
        **pooled.model_dump(),
        n_trials=trials.n_trials,
        trial_sharpe_variance=trials.sharpe_variance,
        deflated_sharpe=trials.deflated_sharpe(traded.returns),
        sharpe_ci=ci,
        baselines=baselines(oos, cfg, horizon),
        folds=[
            fold_report(f, evaluate(oos.select(oos.fold == f.fold), cfg, horizon)) for f in folds
        ],
        portfolio=_portfolio(oos, portfolio or PortfolioConfig(), cfg, horizon),
        **interval_fields(oos.fold, oos.y_true, oos.y_pred, intervals),
    )


def _portfolio(
    oos: OutOfSample, portfolio: PortfolioConfig, cfg: StrategyConfig, horizon: int
) -> PortfolioReport | None:
    ppy = periods_per_year(cfg, horizon)
    return portfolio_report(oos.dates, oos.tickers, oos.y_pred, oos.y_true, portfolio, horizon, ppy)


def portfolio_plot_series(
    oos: OutOfSample, block: PortfolioReport, horizon: int
) -> PortfolioSeries:
    """The per-period long, short and net returns behind a report's portfolio block."""
    cfg = PortfolioConfig.model_validate(
        {k: getattr(block, k) for k in PortfolioConfig.model_fields}
    )
    g = grid(oos.dates, oos.tickers, oos.y_pred, oos.y_true, horizon)
    return portfolio_series(g, cfg, horizon)


def equity_series(
    oos: OutOfSample, cfg: StrategyConfig, horizon: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dates, strategy returns, buy-and-hold returns) per traded date, for plots."""
    res = _trade(oos, oos.y_pred, cfg, horizon)
    bh = _buy_and_hold(oos, cfg, horizon)
    return np.asarray(res.dates), np.asarray(res.returns), np.asarray(bh.returns)


def flat_metrics(report: WalkForwardReport, prefix: str = "") -> dict[str, float]:
    """Defined pooled, honesty, baseline and portfolio (``portfolio_``) values as flat MLflow
    metric names."""
    out = {f"{prefix}{k}": v for k, v in report.defined().items()}
    out[f"{prefix}n_trials"] = float(report.n_trials)
    for side, value in zip(("low", "high"), report.sharpe_ci, strict=True):
        if value is not None:
            out[f"{prefix}sharpe_ci_{side}"] = value
    b = report.baselines
    blocks = {
        "zero_return": b.zero_return,
        "last_return": b.last_return,
        "buy_and_hold": b.buy_and_hold,
    }
    for name, block in blocks.items():
        out.update({f"{prefix}baseline_{name}_{k}": v for k, v in block.defined().items()})
    if report.portfolio is not None:
        out.update({f"{prefix}portfolio_{k}": v for k, v in report.portfolio.metrics().items()})
    for name, levels in (
        ("interval", report.intervals),
        ("interval_split", report.intervals_split),
    ):
        for key, score in (levels or {}).items():
            out.update({f"{prefix}{name}_{key}_{k}": v for k, v in score.defined().items()})
    return out
