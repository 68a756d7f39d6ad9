"""Walk-forward report: forecast and strategy metrics, baselines and honesty, per fold and pooled.

Pure computation on arrays: the train and backtest use cases feed it out-of-sample predictions
and write the resulting dict as ``metrics.json`` and to MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.domain import Fold
from pipeline.evaluation.forecast import forecast_metrics
from pipeline.evaluation.honesty import (
    deflated_sharpe_ratio,
    sharpe_moments,
    stationary_bootstrap_sharpe_ci,
)
from pipeline.evaluation.strategy import panel_strategy_returns, strategy_metrics
from pipeline.settings import StrategyConfig


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
        return OutOfSample(
            *(
                a[mask]
                for a in (
                    self.fold,
                    self.dates,
                    self.tickers,
                    self.y_true,
                    self.y_pred,
                    self.last_return,
                )
            )
        )


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    """NaN/inf become None so that metrics.json is strict JSON."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
        elif isinstance(v, dict):
            out[k] = _clean(v)
        else:
            out[k] = v
    return out


def _strategy(
    oos: OutOfSample, pred: np.ndarray, cfg: StrategyConfig, horizon: int
) -> tuple[dict[str, float], np.ndarray]:
    res = panel_strategy_returns(
        oos.dates,
        oos.tickers,
        pred,
        oos.y_true,
        mode=cfg.mode,
        threshold=cfg.threshold,
        cost_bps=cfg.cost_bps,
        horizon=horizon,
    )
    ppy = cfg.periods_per_year / horizon
    return strategy_metrics(res.returns, ppy, positions=res.weights), res.returns


def _groups(oos: OutOfSample) -> np.ndarray | None:
    return oos.dates if len(np.unique(oos.tickers)) > 1 else None


def metrics_block(oos: OutOfSample, cfg: StrategyConfig, horizon: int) -> dict[str, Any]:
    """Forecast and strategy metrics of one set of test rows (a fold, or all of them)."""
    doc: dict[str, Any] = forecast_metrics(oos.y_true, oos.y_pred, _groups(oos))
    doc.update(_strategy(oos, oos.y_pred, cfg, horizon)[0])
    return doc


def walk_forward_report(
    oos: OutOfSample,
    folds: Sequence[Fold],
    cfg: StrategyConfig,
    horizon: int,
    n_trials: int,
    trial_sharpes: Sequence[float] = (),
    seed: int = 0,
    sharpe_variance: float | None = None,
) -> dict[str, Any]:
    """Pooled and per-fold metrics, baselines on the same test rows, DSR and a Sharpe CI.

    ``n_trials`` is every trial that competed for this model (all candidates), and
    ``trial_sharpes`` their per-period strategy Sharpes, whose variance sets how high a Sharpe
    luck alone would reach among that many tries.
    """
    report = metrics_block(oos, cfg, horizon)
    returns = _strategy(oos, oos.y_pred, cfg, horizon)[1]
    sr, skew, kurt = sharpe_moments(returns)
    finite = [s for s in trial_sharpes if math.isfinite(s)]
    variance = float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0
    if sharpe_variance is not None:  # e.g. recorded on the model version at training time
        variance = sharpe_variance
    report["n_trials"] = int(n_trials)
    report["deflated_sharpe"] = deflated_sharpe_ratio(
        sr, max(n_trials, 1), len(returns), skew, kurt, variance
    )
    lo, hi = stationary_bootstrap_sharpe_ci(
        returns,
        n_boot=cfg.bootstrap_samples,
        seed=seed,
        periods_per_year=cfg.periods_per_year / horizon,
    )
    report["sharpe_ci"] = [lo, hi]
    zero = np.zeros_like(oos.y_true)
    report["baselines"] = {
        "zero_return": forecast_metrics(oos.y_true, zero, _groups(oos)),
        "last_return": {
            **forecast_metrics(oos.y_true, oos.last_return, _groups(oos)),
            **_strategy(oos, oos.last_return, cfg, horizon)[0],
        },
        "buy_and_hold": _strategy(
            oos,
            np.full_like(oos.y_true, np.inf),
            StrategyConfig(
                mode="long_flat",
                threshold=0.0,
                cost_bps=cfg.cost_bps,
                periods_per_year=cfg.periods_per_year,
            ),
            horizon,
        )[0],
    }
    report["folds"] = []
    for fold in folds:
        block = metrics_block(oos.select(oos.fold == fold.fold), cfg, horizon)
        report["folds"].append(
            {
                "fold": fold.fold,
                "train_start": str(fold.train_start),
                "train_end": str(fold.train_end),
                "test_start": str(fold.test_start),
                "test_end": str(fold.test_end),
                "train_rows": fold.train_rows,
                "test_rows": fold.test_rows,
                **block,
            }
        )
    report["folds"] = [_clean(f) for f in report["folds"]]
    sharpe_ci = report["sharpe_ci"]
    cleaned = _clean(report)
    cleaned["sharpe_ci"] = [None if not math.isfinite(v) else v for v in sharpe_ci]
    return cleaned


def equity_series(
    oos: OutOfSample, cfg: StrategyConfig, horizon: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dates, strategy returns, buy-and-hold returns) per traded date, for plots."""
    res = panel_strategy_returns(
        oos.dates,
        oos.tickers,
        oos.y_pred,
        oos.y_true,
        mode=cfg.mode,
        threshold=cfg.threshold,
        cost_bps=cfg.cost_bps,
        horizon=horizon,
    )
    bh = panel_strategy_returns(
        oos.dates,
        oos.tickers,
        np.full_like(oos.y_true, np.inf),
        oos.y_true,
        cost_bps=cfg.cost_bps,
        horizon=horizon,
    )
    return np.asarray(res.dates), np.asarray(res.returns), np.asarray(bh.returns)


def flat_metrics(report: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric top-level and baseline entries as flat MLflow metric names (None skipped)."""
    out: dict[str, float] = {}
    for key, value in report.items():
        if key == "folds":
            continue
        if key == "baselines":
            for name, block in value.items():
                out.update(flat_metrics(block, f"{prefix}baseline_{name}_"))
        elif key == "sharpe_ci" and isinstance(value, list):
            for side, v in zip(("low", "high"), value, strict=True):
                if v is not None:
                    out[f"{prefix}sharpe_ci_{side}"] = float(v)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out
