"""The `backtest` use case: re-run walk-forward for a registered model's own configuration.

The model's feature step (its spec and columns) and its fitted tail's hyperparameters define
what is evaluated; the folds come from the current config. Each fold refits a clone of the
tail on that fold's training rows only, so the numbers are out of sample.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline.data.inputs import Inputs
from pipeline.domain import DataPorts, Fold, LoadedModel, ModelLoader, Tracker
from pipeline.errors import ModelError, StockpipeError
from pipeline.evaluation.honesty import TrialSet
from pipeline.evaluation.report import OutOfSample, flat_metrics, walk_forward_report
from pipeline.evaluation.report_files import write_report_files
from pipeline.evaluation.results import BacktestReport
from pipeline.horizons import per_horizon
from pipeline.reports.backtest_report import write_backtest_report
from pipeline.reports.series import Evidence
from pipeline.settings import FoldsConfig, StockpipeConfig
from pipeline.training.dataset import TrainingSet
from pipeline.training.folds import folds_hash, resolve_folds
from pipeline.training.intervals import interval_setup, model_intervals
from pipeline.training.promotion import refit_per_fold, registered_training_set

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class BacktestPorts(DataPorts):
    """The data, the registered model to re-run and the tracker its report is logged to."""

    loader: ModelLoader
    tracker: Tracker


def recorded_trials(model: LoadedModel) -> TrialSet:
    """The trials the model was picked from, as ``train`` recorded them on its version.

    Re-deflating by the training run's N and V (not by a count of one) keeps the backtest's
    deflated Sharpe the training report's; a version without the tags counts as one trial.
    """
    n_trials = int(model.tags.get("n_trials", "1"))
    variance = float(model.tags.get("trial_sharpe_var", "0") or 0.0)
    return TrialSet(n_trials=n_trials, sharpe_variance=variance)


def backtest_horizons(
    cfg: StockpipeConfig, ports: BacktestPorts, output_dir: Path, model_uri: str | None = None
) -> list[BacktestReport]:
    """`backtest` of the model asked for, or of every configured horizon's champion
    (:func:`pipeline.horizons.per_horizon` decides which, and where the files go)."""
    return [backtest(c, ports, out, uri) for c, out, uri in per_horizon(cfg, output_dir, model_uri)]


def backtest(
    cfg: StockpipeConfig, ports: BacktestPorts, output_dir: Path, model_uri: str | None = None
) -> BacktestReport:
    """Refit the model's pipeline per fold, write the report files (report.html too) and log
    them to MLflow."""
    uri = model_uri or cfg.tracking.champion_uri
    model = ports.loader.load(uri)
    horizon = model.horizon if model.horizon is not None else cfg.model.target.horizon
    ports.tracker.check()
    folds, oos, inputs, data = _refit(uri, model, horizon, cfg.training.folds, ports)
    strategy = cfg.training.strategy
    intervals = interval_setup(model_intervals(model, cfg.model.intervals), data, folds)
    wf = walk_forward_report(
        oos,
        folds,
        strategy,
        horizon,
        recorded_trials(model),
        seed=cfg.training.seed,
        portfolio=cfg.training.portfolio,
        intervals=intervals,
    )
    with ports.tracker.start_run("backtest") as run:
        report = BacktestReport(
            **dict(wf),  # the fields as they are: no round trip through a dump
            model_uri=uri,
            model_version=model.version,
            horizon=horizon,
            folds_hash=folds_hash(folds),
            run_id=run.run_id,
        )
        run.log_params(
            {
                "model_uri": uri,
                "model_version": model.version or "",
                "horizon": horizon,
                "folds_hash": folds_hash(folds),
                "tickers": ",".join(inputs.tickers),
            }
        )
        run.log_metrics(flat_metrics(report))
        files = write_report_files(output_dir, report, oos, strategy, horizon)
        evidence = Evidence(oos, strategy, horizon, intervals)  # what report.html draws
        for path in [*files, write_backtest_report(output_dir, report, evidence)]:
            run.log_artifact(path, "backtest")
    log.info("backtest of %s: %d folds, files in %s", uri, len(folds), output_dir)
    return report


def _refit(
    uri: str, model: LoadedModel, horizon: int, layout: FoldsConfig, ports: BacktestPorts
) -> tuple[list[Fold], OutOfSample, Inputs, TrainingSet]:
    """The model's own features on the current data, refitted per fold: the folds, the
    out-of-sample predictions and the inputs they came from."""
    try:
        data, steps, inputs = registered_training_set(
            model, ports.source, ports.benchmark, ports.store, horizon
        )
    except StockpipeError as exc:
        raise ModelError(f"{uri}: {exc}") from exc
    # The model's horizon decides the purge: its labels reach `horizon` days ahead.
    purge = max(layout.purge, horizon)
    folds = resolve_folds(
        ports.store, inputs.tickers, inputs.batch.ranges, layout, horizon, purge, data.warmup
    ).folds
    predictions = refit_per_fold(steps, data, folds)
    return folds, data.out_of_sample(folds, predictions), inputs, data
