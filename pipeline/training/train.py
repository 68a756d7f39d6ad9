"""The `train` use case: data -> features -> competition -> tracked, gated, registered model."""

from __future__ import annotations

import logging
import time

import yaml

from pipeline.data.inputs import Inputs, store_inputs
from pipeline.domain import Run
from pipeline.model.selectors import check_selection
from pipeline.reports.train_report import TrainReport
from pipeline.settings import (
    ModelConfig,
    StockpipeConfig,
    TrainingConfig,
    TuningConfig,
)
from pipeline.training import lineage
from pipeline.training.competition import Arena, check_candidates, run_competition
from pipeline.training.folds import folds_hash
from pipeline.training.job import TrainOptions, TrainPorts
from pipeline.training.plan import TrainingPlan, plan_horizons
from pipeline.training.promotion import Decision
from pipeline.training.registration import Registered, gate, identical_retrain, register
from pipeline.training.reporting import log_report, summarise
from pipeline.training.summary import TrainSummary
from pipeline.training.tuning import TuningContext, entrants

log = logging.getLogger(__name__)
NOT_REGISTERED = "not registered (tune / train --no-register): nothing in the registry moved"

# TrainPorts and TrainOptions live in job.py, for the job's steps to take them too; folds_hash
# moved to folds.py. All three stay importable from here.
__all__ = ["TrainOptions", "TrainPorts", "folds_hash", "train"]


def train(
    cfg: StockpipeConfig, ports: TrainPorts, options: TrainOptions | None = None
) -> TrainSummary:
    """Run the whole training job; return the machine-readable summary.

    Order matters for "nothing is written on failure": config and data are validated, the
    tracker reached and the job planned in a scratch warehouse (history long enough, folds
    that fit) before the warehouse, the snapshots or the registry are touched; registration
    comes last and the champion alias moves only after the version is registered.

    With several horizons (``model.target.horizons``) each gets its own target, competition,
    folds purged by its horizon and registered model, as a child run of one parent run; they
    share one feature computation. The summary is the primary horizon's, with every
    horizon's own summary under ``by_horizon``.
    """
    options = options or TrainOptions()
    started = time.perf_counter()
    plans = _prepare(cfg, ports)
    snapshots = _store_inputs(ports, plans[cfg.model.target.horizon].inputs)
    resolved = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)  # for the record
    pages = TrainReport()  # report.html: each horizon's sections, then the page
    with ports.tracker.start_run("train") as parent:
        if len(plans) == 1:
            (h,) = plans
            summary = _train_horizon(
                cfg.for_horizon(h), ports, options, plans[h], parent, snapshots, pages=pages
            )
            parent.log_text(resolved, "config/resolved_config.yaml")
        else:
            parent.log_params({"horizons": ",".join(map(str, plans))})
            parent.log_text(resolved, "config/resolved_config.yaml")
            summaries = {}
            for h, plan in plans.items():
                with ports.tracker.start_run(f"horizon_{h}", parent=parent) as child:
                    summaries[h] = _train_horizon(
                        cfg.for_horizon(h),
                        ports.for_horizon(h),
                        options,
                        plan,
                        child,
                        snapshots,
                        several=True,
                        pages=pages,
                    )
            by_horizon = {str(h): s for h, s in summaries.items()}
            summary = summaries[cfg.model.target.horizon].model_copy(
                update={"by_horizon": by_horizon}
            )
        pages.publish(parent, cfg.resolve(cfg.training.summary_path).parent)
    # Set last and without re-validation: the rest of the summary is already checked.
    return summary.model_copy(update={"seconds": round(time.perf_counter() - started, 2)})


def _train_horizon(
    cfg: StockpipeConfig,
    ports: TrainPorts,
    options: TrainOptions,
    plan: TrainingPlan,
    parent: Run,
    snapshots: tuple[list[str], list[str]],
    several: bool = False,
    pages: TrainReport | None = None,
) -> TrainSummary:
    """One horizon's competition, report, gate and registration, logged under ``parent``
    (``cfg`` is narrowed to that horizon: its target, registered model and purge)."""
    started = time.perf_counter()
    model, training, root = cfg.model, cfg.training, cfg.project_root
    study = _study(options.study_name, model, training, plan, several)
    tags = lineage.lineage_tags(
        plan, study, snapshots, model, training.seed, lineage.config_hash(cfg), root
    )
    _log_job(parent, training.tuning, plan, tags)
    ctx = TuningContext.from_config(model, training, root, plan.data, plan.folds)
    arena = Arena(ports.tracker, parent, study, ports.progress, tags, cfg.tracking.trial_artifacts)
    comp = run_competition(ctx, entrants(cfg.candidates, training.n_trials), arena)
    report = log_report(parent, training.strategy, training.seed, plan, comp, training.portfolio)
    same = identical_retrain(
        cfg.tracking, training.promotion, ports.registry, parent, comp, options
    )
    if same is not None:  # the registry already holds this very model: nothing to register
        decision, registered = same
    elif options.register:
        best, force = comp.best.best_value, options.force_promote
        decision = gate(cfg.tracking, training, ports, plan, best, force)
        registered = register(
            cfg.tracking, training.promotion, ports.registry, parent, comp, decision, report
        )
    else:
        decision = Decision(False, NOT_REGISTERED)
        registered = Registered.not_registered(cfg.tracking.registered_model, parent, comp)
    summary = summarise(plan, comp, report, decision, registered, ports.tracker.uri)
    log.info(
        "h=%d: %s %s: %s",
        plan.horizon,
        cfg.tracking.registered_model,
        f"v{registered.version} -> @{registered.alias}" if registered.version else "(none)",
        decision.reason,
    )
    summary = summary.model_copy(update={"seconds": round(time.perf_counter() - started, 2)})
    if pages is not None:
        pages.add(parent, summary, plan, comp, training.strategy, several)
    return summary


def _prepare(cfg: StockpipeConfig, ports: TrainPorts) -> dict[int, TrainingPlan]:
    """Validate, reach the tracker and plan every horizon in a scratch warehouse; write
    nothing real."""
    check_candidates(cfg.candidates, cfg.training.seed)
    check_selection(cfg.model.selection, cfg.training.seed)
    plans = plan_horizons(
        cfg.model,
        cfg.training.folds,
        cfg.data.short_history,
        ports.source,
        ports.benchmark,
        ports.workspace(),
    )
    for plan in plans.values():
        log.info("h=%d: %s", plan.horizon, "; ".join(plan.describe()))
    # Reaching the store may create it (sqlite): only once the data is known to train.
    ports.tracker.check()
    return plans


def _study(
    requested: str | None,
    model: ModelConfig,
    training: TrainingConfig,
    plan: TrainingPlan,
    several: bool,
) -> str:
    """The study the job tunes in (asked for, configured, or named after the problem); with
    several horizons, one study each (``<name>_h<h>``)."""
    study = requested or training.tuning.study_name or lineage.study_prefix(model, training, plan)
    if several:
        study = f"{study}_h{plan.horizon}"
    log.info(
        "training set: %d rows, %d features, %d folds; study %s",
        len(plan.data.y),
        len(plan.data.columns),
        len(plan.folds),
        study,
    )
    return study


def _store_inputs(ports: TrainPorts, inputs: Inputs) -> tuple[list[str], list[str]]:
    """Keep an immutable copy of the panel and of the benchmark file, then upsert both into
    the warehouse; return the snapshot ids of each."""
    batch, bench, snaps = inputs.batch, inputs.benchmark_batch, ports.snapshots
    ids = list(batch.snapshots)
    bench_ids = list(bench.snapshots) if bench is not None else []
    if snaps is not None and not ids:
        params = {"path": batch.source, "file_sha256": batch.sha256}
        ids = [s.id for s in snaps.record(batch, "file", params)]
    if snaps is not None and bench is not None and not bench_ids:
        params = {"path": bench.source, "file_sha256": bench.sha256, "role": "benchmark"}
        bench_ids = [s.id for s in snaps.record(bench, "file", params)]
    store_inputs(ports.store, inputs)
    return ids, bench_ids


def _log_job(parent: Run, tuning: TuningConfig, plan: TrainingPlan, tags: dict[str, str]) -> None:
    """The job's parameters and lineage on its run."""
    parent.log_params(
        {
            "horizon": plan.horizon,
            "n_features": len(plan.data.columns),
            "primary_metric": tuning.primary_metric,
            "direction": tuning.resolved_direction,
            "folds_adapted": plan.layout.adapted or "",
            **tags,
        }
    )
