"""One evaluation path (issue 11): one answer per question, recomputed here independently.

`train` runs against fakes for tracking and the registry; every expected number is computed
from the written predictions or the logged trial values with numpy/scipy, never read back from
the code under test.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fakes import FakeRegistry, FakeRun, FakeTracker, train_ports
from scipy import stats
from support import write_yaml

from pipeline.config import load_config
from pipeline.settings import StockpipeConfig
from pipeline.training.summary import TrainSummary
from pipeline.training.train import train

COST = 5e-4  # conf/base/training.yaml: cost_bps 5
WIDE_RIDGE = {  # alphas from overfitting to constant: the median pruner stops several trials
    "name": "ridge",
    "estimator": "ridge",
    "n_trials": 12,
    "space": {"alpha": {"type": "float", "low": 1e-3, "high": 1e6, "log": True}},
}


def _train(cfg: StockpipeConfig) -> tuple[TrainSummary, FakeTracker, FakeRegistry]:
    tracker, registry = FakeTracker(), FakeRegistry()
    return train(cfg, train_ports(tracker=tracker, registry=registry)), tracker, registry


def _predictions(parent: FakeRun) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(parent.artifacts["backtest/predictions.parquet"]))


@pytest.mark.slow
def test_train_reports_one_pooled_zero_return_baseline(conf_dir: Path) -> None:
    summary, tracker, _ = _train(load_config(conf_dir))
    preds = _predictions(tracker.runs[0])
    y = preds["realised"].to_numpy()

    zero = summary.baselines.zero_return
    assert zero is summary.backtest.baselines.zero_return  # one object, not two answers
    # pooled over every test row, by hand
    assert zero.rmse == pytest.approx(math.sqrt(float(np.mean(y**2))), rel=1e-12)
    assert zero.mae == pytest.approx(float(np.mean(np.abs(y))), rel=1e-12)
    assert zero.directional_accuracy == pytest.approx(float(np.mean(y <= 0)), rel=1e-12)
    assert zero.r2 == 0.0 and zero.ic is None
    # ... which is not the fold mean the summary used to carry
    per_fold = [
        math.sqrt(float(np.mean(part["realised"].to_numpy() ** 2)))
        for part in preds.partition_by("fold", maintain_order=True)
    ]
    assert abs(zero.rmse - float(np.mean(per_fold))) > 1e-5
    # the parent run logs that same number under its historical name
    logged = tracker.runs[0].metrics
    assert logged["baseline_zero_return_rmse"] == [(None, zero.rmse)]
    assert logged["oos_baseline_zero_return_rmse"] == [(None, zero.rmse)]


@pytest.mark.slow
def test_summary_metrics_are_the_mean_of_its_folds(conf_dir: Path) -> None:
    summary, tracker, _ = _train(load_config(conf_dir))
    preds = _predictions(tracker.runs[0])
    folds = preds.partition_by("fold", maintain_order=True)
    fold_rmse = [
        math.sqrt(float(np.mean((f["realised"].to_numpy() - f["prediction"].to_numpy()) ** 2)))
        for f in folds
    ]
    assert [f.rmse for f in summary.folds] == pytest.approx(fold_rmse, rel=1e-12)
    assert summary.metrics.rmse == pytest.approx(float(np.mean(fold_rmse)), rel=1e-12)
    assert summary.champion.primary_value == pytest.approx(summary.metrics.rmse, rel=1e-12)
    assert summary.folds == summary.backtest.folds
    err = preds["realised"].to_numpy() - preds["prediction"].to_numpy()
    assert summary.backtest.rmse == pytest.approx(math.sqrt(float(np.mean(err**2))), rel=1e-12)


def _trial_sharpes(tracker: FakeTracker) -> tuple[list[float], list[float]]:
    """Per-period Sharpe of every trial (mean of its logged fold Sharpes / sqrt(252)).

    Returns (every trial with a Sharpe, the complete ones only).
    """
    every, complete = [], []
    for trial in tracker.trials:
        folds = [v for _, v in trial.metrics.get("fold_sharpe", [])]
        if not folds:
            continue
        sharpe = float(np.mean(folds)) / math.sqrt(252)
        every.append(sharpe)
        if trial.tags["state"] == "complete":
            complete.append(sharpe)
    return every, complete


def _dsr(returns: np.ndarray, n: int, variance: float) -> float:
    """Bailey & Lopez de Prado (2014), eq. for DSR, with scipy's moments and normal."""
    sr = returns.mean() / returns.std(ddof=1)
    skew = stats.skew(returns)  # biased, as in the paper
    kurt = stats.kurtosis(returns, fisher=False)
    g = np.euler_gamma
    sr0 = math.sqrt(variance) * (
        (1 - g) * stats.norm.ppf(1 - 1 / n) + g * stats.norm.ppf(1 - 1 / (n * math.e))
    )
    z = (sr - sr0) * math.sqrt(returns.size - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    return float(stats.norm.cdf(z))


@pytest.mark.slow
def test_deflated_sharpe_counts_and_spreads_the_same_trials(conf_dir: Path) -> None:
    write_yaml(conf_dir / "local" / "model_candidates.yaml", {"candidates": [WIDE_RIDGE]})
    tuning = {"pruner": "median", "pruner_startup_trials": 2, "pruner_warmup_folds": 0}
    write_yaml(conf_dir / "local" / "training.yaml", {"tuning": tuning})
    summary, tracker, registry = _train(load_config(conf_dir))
    every, complete = _trial_sharpes(tracker)
    assert summary.candidates[0].n_pruned > 0 and len(complete) < len(every) == 12

    report = summary.backtest
    variance = float(np.var(every, ddof=1))
    assert report.n_trials == summary.n_trials == len(every)  # N: pruned trials included
    assert report.trial_sharpe_variance == pytest.approx(variance, rel=1e-9)  # V: the same set
    tags = registry.registered["1"]["tags"]
    assert int(tags["n_trials"]) == len(every)
    assert float(tags["trial_sharpe_var"]) == pytest.approx(variance, rel=1e-9)

    # the champion's pooled long/flat returns after costs, from its written predictions
    preds = _predictions(tracker.runs[0]).sort("date")
    pos = (preds["prediction"].to_numpy() > 0).astype(float)
    turnover = np.abs(np.diff(pos, prepend=0.0))
    returns = pos * np.expm1(preds["realised"].to_numpy()) - COST * turnover
    assert report.deflated_sharpe == pytest.approx(_dsr(returns, len(every), variance), abs=1e-9)
    # the former mix (N over every trial, V over the complete ones) is a different number
    mixed = _dsr(returns, len(every), float(np.var(complete, ddof=1)))
    assert abs(report.deflated_sharpe - mixed) > 1e-6
