"""The `train` use case: data -> features -> competition -> tracked, gated, registered model."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.data.inputs import Inputs, LoadedSource, load_inputs, store_inputs
from pipeline.data.snapshots import SnapshotStore
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import Fold, ModelLoader, PriceSource, PriceStore, Registry, Tracker
from pipeline.errors import ConfigError, StockpipeError
from pipeline.evaluation.report import flat_metrics, fold_mean, walk_forward_report
from pipeline.evaluation.report_files import write_report_files
from pipeline.evaluation.results import WalkForwardReport
from pipeline.model.estimators import check_params
from pipeline.model.pipeline import SELECTOR_PARAM_PREFIX
from pipeline.settings import StockpipeConfig
from pipeline.training import lineage
from pipeline.training.callbacks import NoProgress, Progress
from pipeline.training.competition import (
    CompetitionResult,
    run_competition,
    selection_stability,
)
from pipeline.training.dataset import TrainingSet
from pipeline.training.folds import folds_hash
from pipeline.training.plan import TrainingPlan, plan_training
from pipeline.training.promotion import Decision, decide, incumbent_value
from pipeline.training.summary import (
    Champion,
    DataSummary,
    FoldsLayout,
    TrainBaselines,
    TrainSummary,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainPorts:
    """Everything the use case talks to, injected by the composition root or by tests."""

    source: PriceSource
    store: PriceStore
    tracker: Tracker
    registry: Registry
    benchmark: PriceSource | None = None
    loader: ModelLoader | None = None  # loads the incumbent for the promotion gate
    progress: Progress = field(default_factory=NoProgress)
    snapshots: SnapshotStore | None = None  # keeps an immutable copy of what was trained on
    # A scratch warehouse where the job is planned before anything real is written. An
    # in-memory DuckDB is computation, not I/O, so it is the default everywhere.
    workspace: Callable[[], PriceStore] = field(default=lambda: DuckDBStore(":memory:"))


@dataclass(frozen=True)
class TrainOptions:
    force_promote: bool = False
    study_name: str | None = None


__all__ = ["folds_hash"]  # moved to pipeline.training.folds; kept importable


def training_problem(cfg: StockpipeConfig, inputs: Inputs, workspace: PriceStore) -> TrainingPlan:
    """Features, target and folds of the inputs: what every competing process tunes on."""
    return plan_training(cfg.model, cfg.training.folds, cfg.data.short_history, inputs, workspace)


def study_prefix(cfg: StockpipeConfig, inputs: Inputs, folds: list[Fold]) -> str:
    """Default study name: the same problem (data, features, folds, objective) resumes."""
    doc = [
        inputs.batch.sha256,
        inputs.benchmark_sha256,
        lineage.feature_spec_hash(cfg.model),
        folds_hash(folds),
        cfg.training.seed,
        cfg.training.tuning.primary_metric,
    ]
    return "stockpipe-" + hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:12]


def _check_candidates(cfg: StockpipeConfig) -> None:
    for cand in cfg.candidates.candidates:
        names = [k for k in (*cand.params, *cand.space) if not k.startswith(SELECTOR_PARAM_PREFIX)]
        try:
            check_params(cand.estimator, dict.fromkeys(names), cfg.training.seed)
        except ValueError as exc:
            raise ConfigError(f"model_candidates.yaml: candidate '{cand.name}': {exc}") from exc


def _gate(
    cfg: StockpipeConfig,
    ports: TrainPorts,
    inputs: Inputs,
    comp: CompetitionResult,
    folds: list[Fold],
    force: bool,
) -> Decision:
    incumbent = ports.registry.version_for_alias(cfg.tracking.champion_alias)
    score: float | None = None
    problem: str | None = None
    if incumbent is not None and not force and cfg.training.promotion.enabled:
        try:
            if ports.loader is None:
                raise StockpipeError("no model loader configured")
            model = ports.loader.load(f"models:/{cfg.tracking.registered_model}/{incumbent}")
            if model.horizon not in (None, cfg.model.target.horizon):
                raise StockpipeError(
                    f"it predicts horizon {model.horizon}, not {cfg.model.target.horizon}"
                )
            # The incumbent is judged on the very batch the challenger trained on: no re-read
            # (the file could have changed since) and no second validation.
            bench = inputs.benchmark_batch
            score = incumbent_value(
                cfg,
                model,
                folds,
                LoadedSource(inputs.batch),
                LoadedSource(bench) if bench is not None else ports.benchmark,
                ports.store,
            )
        except (StockpipeError, ValueError, KeyError) as exc:
            problem = str(exc)
    training = cfg.training
    return decide(
        training.tuning, training.promotion, comp.best.best_value, incumbent, score, force, problem
    )


def _record_snapshots(ports: TrainPorts, inputs: Inputs) -> tuple[list[str], list[str]]:
    """Keep an immutable copy of the panel and of the benchmark file; return their ids."""
    batch, bench = inputs.batch, inputs.benchmark_batch
    ids = list(batch.snapshots)
    bench_ids = list(bench.snapshots) if bench is not None else []
    if ports.snapshots is None:
        return ids, bench_ids
    if not ids:
        params = {"path": batch.source, "file_sha256": batch.sha256}
        ids = [s.id for s in ports.snapshots.record(batch, "file", params)]
    if bench is not None and not bench_ids:
        params = {"path": bench.source, "file_sha256": bench.sha256, "role": "benchmark"}
        bench_ids = [s.id for s in ports.snapshots.record(bench, "file", params)]
    return ids, bench_ids


def _prepare(cfg: StockpipeConfig, ports: TrainPorts) -> TrainingPlan:
    """Validate, reach the tracker and plan in a scratch warehouse; write nothing real."""
    _check_candidates(cfg)
    inputs = load_inputs(cfg.model.features, ports.source, ports.benchmark)
    plan = training_problem(cfg, inputs, ports.workspace())
    log.info("%s", "; ".join(plan.describe()))
    # Reaching the store may create it (sqlite): only once the data is known to train.
    ports.tracker.check()
    return plan


def _lineage(
    cfg: StockpipeConfig, plan: TrainingPlan, study_name: str, snapshots: tuple[list[str], ...]
) -> dict[str, str]:
    inputs = plan.inputs
    return {
        "data_sha256": inputs.batch.sha256,
        "benchmark_sha256": inputs.benchmark_sha256,
        "benchmark": inputs.benchmark or "",
        "config_hash": lineage.config_hash(cfg),
        "feature_spec_hash": lineage.feature_spec_hash(cfg.model),
        "folds_hash": plan.layout.hash,
        "git_commit": lineage.git_commit(cfg.project_root),
        "seed": str(cfg.training.seed),
        "package_versions": lineage.package_versions(),
        "tickers": ",".join(inputs.tickers),  # only tickers that contributed rows
        "skipped_tickers": ",".join(plan.skipped),
        "horizon": str(cfg.model.target.horizon),
        "study_name": study_name,
        "snapshot_ids": ",".join(snapshots[0]),
        "benchmark_snapshot_ids": ",".join(snapshots[1]),
    }


def train(
    cfg: StockpipeConfig, ports: TrainPorts, options: TrainOptions | None = None
) -> TrainSummary:
    """Run the whole training job; return the machine-readable summary.

    Order matters for "nothing is written on failure": config and data are validated, the
    tracker reached and the job planned in a scratch warehouse (history long enough, folds
    that fit) before the warehouse, the snapshots or the registry are touched; registration
    comes last and the champion alias moves only after the version is registered.
    """
    options = options or TrainOptions()
    started = time.perf_counter()
    plan = _prepare(cfg, ports)
    inputs, folds = plan.inputs, plan.folds
    tuning = cfg.training.tuning
    study_name = options.study_name or tuning.study_name or study_prefix(cfg, inputs, folds)
    log.info(
        "training set: %d rows, %d features, %d folds; study %s",
        len(plan.data.y),
        len(plan.data.columns),
        len(folds),
        study_name,
    )
    snapshots = _record_snapshots(ports, inputs)
    store_inputs(ports.store, inputs)
    lineage_tags = _lineage(cfg, plan, study_name, snapshots)
    with ports.tracker.start_run("train") as parent:
        result = _compete_and_register(cfg, ports, plan, parent, lineage_tags, options)
    champion = result.champion
    log.info("v%s -> @%s: %s", champion.version, champion.alias, champion.reason)
    # Set last and without re-validation: the rest of the summary is already checked.
    return result.model_copy(update={"seconds": round(time.perf_counter() - started, 2)})


def _compete_and_register(
    cfg: StockpipeConfig,
    ports: TrainPorts,
    plan: TrainingPlan,
    parent: Any,
    lineage_tags: dict[str, str],
    options: TrainOptions,
) -> TrainSummary:
    """Inside the parent run: tune, report, gate and register; return the summary."""
    data, folds, tuning = plan.data, plan.folds, cfg.training.tuning
    horizon = cfg.model.target.horizon
    parent.log_params(
        {
            "horizon": horizon,
            "n_features": len(data.columns),
            "primary_metric": tuning.primary_metric,
            "direction": tuning.resolved_direction,
            "folds_adapted": plan.layout.adapted or "",
            **lineage_tags,
        }
    )
    parent.log_text(
        yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), "config/resolved_config.yaml"
    )
    comp = run_competition(
        cfg,
        ports.tracker,
        parent,
        data,
        folds,
        lineage_tags["study_name"],
        ports.progress,
        lineage_tags,
    )
    report = _log_report(cfg, parent, data, folds, comp)
    decision = _gate(cfg, ports, plan.inputs, comp, folds, options.force_promote)
    decision = _still_current(cfg, ports.registry, decision)
    version, alias = _register(cfg, ports, comp, decision, report, lineage_tags, len(folds))
    parent.set_tags(
        {
            "registered_version": version,
            "promoted": str(decision.promoted),
            "promotion_reason": decision.reason,
        }
    )
    return _summary(
        cfg,
        plan,
        comp,
        decision,
        report,
        lineage_tags,
        ports,
        {"version": version, "alias": alias, "parent_run_id": parent.run_id},
    )


def _log_report(
    cfg: StockpipeConfig,
    parent: Any,
    data: TrainingSet,
    folds: list[Fold],
    comp: CompetitionResult,
) -> WalkForwardReport:
    """The winner's walk-forward report, its files and the competition's artifacts."""
    best, horizon = comp.best, cfg.model.target.horizon
    oos = data.out_of_sample(folds, best.evaluation.predictions)
    report = walk_forward_report(
        oos, folds, cfg.training.strategy, horizon, comp.trials, seed=cfg.training.seed
    )
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
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_report_files(Path(tmp), report, oos, cfg.training.strategy, horizon):
            parent.log_artifact(path, "backtest")
        for path in comp.write_artifacts(Path(tmp)):
            parent.log_artifact(path, "competition")
    parent.log_text(
        selection_stability(best.evaluation.selected, data.columns), "selection/stability.csv"
    )
    return report


def _still_current(cfg: StockpipeConfig, registry: Registry, decision: Decision) -> Decision:
    """Keep the gate honest against a concurrent train: if the champion alias moved while
    this job was being judged against the old incumbent, this job does not promote."""
    if not decision.promoted or decision.forced:
        return decision
    now = registry.version_for_alias(cfg.tracking.champion_alias)
    if now == decision.incumbent_version:
        return decision
    return dataclasses.replace(
        decision,
        promoted=False,
        reason=(
            f"the champion moved to v{now} while this model was judged against "
            f"v{decision.incumbent_version or 'none'}; kept v{now}: re-run train to compare "
            f"with it ({decision.reason})"
        ),
    )


def _register(
    cfg: StockpipeConfig,
    ports: TrainPorts,
    comp: CompetitionResult,
    decision: Decision,
    report: WalkForwardReport,
    lineage_tags: dict[str, str],
    n_folds: int,
) -> tuple[str, str]:
    """Register the winner, then move its alias.

    Every version is registered with ``promoted=false``; the registry sets it to true only
    once the champion alias points at the version, so a kill in between never leaves a
    version that looks promoted without the alias.
    """
    best, primary = comp.best, cfg.training.tuning.primary_metric
    tags = {
        **lineage_tags,
        "candidate": best.name,
        "estimator": best.kind,
        "warmup_rows": str(best.warmup),
        "primary_metric": primary,
        primary: f"{best.best_value:.8g}",
        # The deflated Sharpe's N and V, so that `backtest` deflates by the same trials.
        "n_trials": str(report.n_trials),
        "trial_sharpe_var": repr(report.trial_sharpe_variance),
        "promoted": "false",
        "gate_passed": str(decision.promoted).lower(),
        "promotion_reason": decision.reason,
        "force_promote": str(decision.forced).lower(),
    }
    mean = fold_mean(report.folds)
    description = (
        f"{best.name} ({best.kind}) from study {lineage_tags['study_name']}: mean over "
        f"{n_folds} folds rmse {_fmt(mean.rmse, '.6g')}, mae {_fmt(mean.mae, '.6g')}, "
        f"directional accuracy {_fmt(mean.directional_accuracy, '.4f')}; pooled strategy "
        f"sharpe {_fmt(report.sharpe, '.4g')}; {decision.reason}"
    )
    version = ports.registry.register(best.model_uri, best.run_id, tags, description)
    promotion = cfg.training.promotion
    alias = cfg.tracking.champion_alias if decision.promoted else promotion.challenger_alias
    ports.registry.set_alias(alias, version, record=decision.promoted)
    return version, alias


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _champion(
    cfg: StockpipeConfig, comp: CompetitionResult, decision: Decision, registered: dict[str, str]
) -> Champion:
    best, name, version = comp.best, cfg.tracking.registered_model, registered["version"]
    return Champion(
        candidate=best.name,
        run_id=best.run_id,
        parent_run_id=registered["parent_run_id"],
        registered_model=name,
        version=version,
        model_uri=f"models:/{name}/{version}",
        alias=registered["alias"],
        promoted=decision.promoted,
        reason=decision.reason,
        forced=decision.forced,
        incumbent_version=decision.incumbent_version,
        incumbent_value=decision.incumbent_value,
        primary_metric=cfg.training.tuning.primary_metric,
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


def _summary(
    cfg: StockpipeConfig,
    plan: TrainingPlan,
    comp: CompetitionResult,
    decision: Decision,
    report: WalkForwardReport,
    lineage_tags: dict[str, str],
    ports: TrainPorts,
    registered: dict[str, str],
) -> TrainSummary:
    """The machine-readable summary (``--summary``); ``seconds`` is filled in by the caller."""
    candidates = comp.summary()
    layout = plan.layout
    return TrainSummary(
        champion=_champion(cfg, comp, decision, registered),
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
        study_name=lineage_tags["study_name"],
        n_trials=report.n_trials,
        data=_data_summary(plan),
        lineage=lineage_tags,
        features=list(plan.data.columns),
        horizon=cfg.model.target.horizon,
        tracking_uri=ports.tracker.uri,
        seconds=0.0,
    )
