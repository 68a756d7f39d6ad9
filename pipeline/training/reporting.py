"""What a training job reports: the winner's walk-forward report and the typed summary.

The report is logged on the job's parent run (metrics, report files, the competition's
artifacts); the summary (:class:`TrainSummary`) is what ``train()`` returns and ``--summary``
writes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl

from pipeline.domain import Run
from pipeline.evaluation.report import flat_metrics, fold_mean, walk_forward_report
from pipeline.evaluation.report_files import write_report_files
from pipeline.evaluation.results import WalkForwardReport
from pipeline.monitoring.datacolumns import aligned
from pipeline.monitoring.profile import PROFILE_ARTIFACT, build_profile
from pipeline.settings import PortfolioConfig, StrategyConfig
from pipeline.training.competition import CompetitionResult, selection_stability
from pipeline.training.intervals import interval_setup
from pipeline.training.plan import TrainingPlan
from pipeline.training.promotion import Decision
from pipeline.training.registration import Registered
from pipeline.training.summary import (
    Champion,
    DataSummary,
    FoldsLayout,
    TrainBaselines,
    TrainSummary,
)


def log_report(
    parent: Run,
    strategy: StrategyConfig,
    seed: int,
    plan: TrainingPlan,
    comp: CompetitionResult,
    portfolio: PortfolioConfig | None = None,
) -> WalkForwardReport:
    """The winner's walk-forward report, its files and the competition's artifacts.

    ``seed`` seeds the bootstrap of the Sharpe ratio's interval; ``portfolio`` sets a panel's
    cross-sectional portfolio (the defaults when None). The prediction intervals are the
    competition's (``comp.intervals``), their scale read from the training set's features.
    """
    best, data, folds, horizon = comp.best, plan.data, plan.folds, plan.horizon
    oos = data.out_of_sample(folds, best.evaluation.predictions)
    report = walk_forward_report(
        oos,
        folds,
        strategy,
        horizon,
        comp.trials,
        seed=seed,
        portfolio=portfolio,
        intervals=interval_setup(comp.intervals, data, folds),
    )
    _log_metrics(parent, report)
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_report_files(Path(tmp), report, oos, strategy, horizon):
            parent.log_artifact(path, "backtest")
        for path in comp.write_artifacts(Path(tmp)):
            parent.log_artifact(path, "competition")
    parent.log_text(
        selection_stability(best.evaluation.selected, data.columns), "selection/stability.csv"
    )
    # What `stockpipe monitor` compares recent windows with: every model input on the training
    # rows and the predictions above (registration tags the version with this run).
    rows = pl.DataFrame({"ticker": data.tickers, "date": data.dates})
    profile = build_profile(
        data.X,
        data.columns,
        data.dates.to_numpy(),
        oos.y_pred,
        oos.dates,
        tickers=data.tickers.to_numpy(),
        data=aligned(data.raw, rows),
    )
    parent.log_text(profile.model_dump_json(), PROFILE_ARTIFACT)
    return report


def _log_metrics(parent: Run, report: WalkForwardReport) -> None:
    # Unprefixed: fold means (what the competition ranked on); oos_: pooled. The zero-return
    # baseline keeps its historical name, with the pooled value the summary reports.
    zero = report.baselines.zero_return.defined()
    parent.log_metrics(
        {
            **fold_mean(report.folds).defined(),
            **flat_metrics(report, "oos_"),
            **{f"baseline_zero_return_{k}": v for k, v in zero.items()},
        }
    )
    for k, m in enumerate(report.folds):
        parent.log_metrics({f"fold_{n}": v for n, v in m.defined().items()}, step=k)


def summarise(
    plan: TrainingPlan,
    comp: CompetitionResult,
    report: WalkForwardReport,
    decision: Decision,
    registered: Registered,
    tracking_uri: str,
) -> TrainSummary:
    """The machine-readable summary (``--summary``); ``seconds`` is filled in by the caller."""
    candidates = comp.summary()
    layout = plan.layout
    return TrainSummary(
        champion=_champion(comp, decision, registered),
        # Per fold: the report's own folds and their mean. Pooled: the report and its baseline.
        metrics=fold_mean(report.folds),
        folds=report.folds,
        folds_layout=FoldsLayout(
            n_folds=len(plan.folds), test_size=layout.spec.test_size, adapted=layout.adapted
        ),
        baselines=TrainBaselines(zero_return=report.baselines.zero_return),
        backtest=report,
        candidates=candidates,
        timed_out=[c.name for c in candidates if c.timed_out],
        study_name=comp.study_name,
        n_trials=report.n_trials,
        data=_data_summary(plan),
        lineage=comp.lineage,
        features=list(plan.data.columns),
        features_left_out=plan.left_out,
        horizon=plan.horizon,
        tracking_uri=tracking_uri,
        seconds=0.0,
    )


def _champion(comp: CompetitionResult, decision: Decision, registered: Registered) -> Champion:
    best = comp.best
    return Champion(
        candidate=best.name,
        run_id=best.run_id,
        parent_run_id=registered.parent_run_id,
        registered_model=registered.model,
        version=registered.version,
        model_uri=registered.model_uri,
        alias=registered.alias,
        promoted=decision.promoted,
        reason=decision.reason,
        forced=decision.forced,
        incumbent_version=decision.incumbent_version,
        incumbent_value=decision.incumbent_value,
        primary_metric=comp.primary,
        primary_value=best.best_value,
    )


def _data_summary(plan: TrainingPlan) -> DataSummary:
    batch = plan.inputs.batch
    return DataSummary(
        rows=batch.frame.height,
        tickers=list(batch.tickers),
        skipped_tickers={t: {"rows": n, "needed": plan.need_rows} for t, n in plan.skipped.items()},
        first_date=str(batch.frame["date"].min()),
        last_date=str(batch.frame["date"].max()),
        sha256=batch.sha256,
        source=batch.source,
        training_rows=len(plan.data.y),
    )
