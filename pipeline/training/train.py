"""The `train` use case: data -> features -> competition -> tracked, gated, registered model."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.data.inputs import Inputs, LoadedSource, load_inputs, store_inputs
from pipeline.data.snapshots import SnapshotStore
from pipeline.domain import Fold, PriceSource, PriceStore, Registry, Tracker
from pipeline.errors import ConfigError, StockpipeError
from pipeline.evaluation.files import write_report_files
from pipeline.evaluation.metrics import mean_over_folds, score_all
from pipeline.evaluation.report import flat_metrics, walk_forward_report
from pipeline.features.spec import build_feature_defs
from pipeline.model.estimators import check_params
from pipeline.model.pipeline import SELECTOR_PARAM_PREFIX, feature_columns
from pipeline.serving.score import ModelLoader
from pipeline.settings import StockpipeConfig
from pipeline.training import lineage
from pipeline.training.callbacks import NoProgress, Progress
from pipeline.training.competition import (
    CompetitionResult,
    run_competition,
    selection_stability,
)
from pipeline.training.dataset import TrainingSet, build_training_set
from pipeline.training.promotion import Decision, decide, incumbent_value

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


@dataclass(frozen=True)
class TrainOptions:
    force_promote: bool = False
    study_name: str | None = None


def folds_hash(folds: list[Fold]) -> str:
    """Fingerprint of the fold manifest: same hash, same train/test dates."""
    doc = [
        [
            f.fold,
            str(f.train_start),
            str(f.train_end),
            str(f.test_start),
            str(f.test_end),
            f.train_rows,
            f.test_rows,
        ]
        for f in folds
    ]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]


def fold_params(cfg: StockpipeConfig) -> dict[str, Any]:
    """Fold-manifest parameters bound into the SQL view."""
    return {**cfg.training.folds.model_dump(), "horizon": cfg.model.target.horizon}


def training_problem(
    cfg: StockpipeConfig, inputs: Inputs, store: PriceStore
) -> tuple[TrainingSet, list[Fold]]:
    """Features, target and folds of the stored inputs: what every competing process tunes on."""
    defs = build_feature_defs(cfg.model.features)
    data = build_training_set(
        inputs.history(store), defs, feature_columns(cfg.model), cfg.model.target.horizon
    )
    return data, store.folds(inputs.tickers, fold_params(cfg), inputs.batch.ranges)


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


def _baseline(data: TrainingSet, folds: list[Fold]) -> dict[str, float]:
    per_fold = []
    for fold in folds:
        _, test = data.masks(fold)
        per_fold.append(score_all(data.y[test], np.zeros(int(test.sum()))))
    return mean_over_folds(per_fold)


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
    return decide(cfg, comp.best.best_value, incumbent, score, force, problem)


def train(
    cfg: StockpipeConfig, ports: TrainPorts, options: TrainOptions | None = None
) -> dict[str, Any]:
    """Run the whole training job; return the machine-readable summary.

    Order matters for "nothing is written on failure": config and data are validated and the
    tracker reached before the warehouse or the registry is touched; registration comes last.
    """
    options = options or TrainOptions()
    started = time.perf_counter()
    _check_candidates(cfg)
    inputs = load_inputs(cfg.model.features, ports.source, ports.benchmark)
    batch = inputs.batch
    ports.tracker.check()
    snapshot_ids = list(batch.snapshots)
    if ports.snapshots is not None and not snapshot_ids:
        params = {"path": batch.source, "file_sha256": batch.sha256}
        snapshot_ids = [s.id for s in ports.snapshots.record(batch, "file", params)]
    store_inputs(ports.store, inputs)
    tickers, horizon = batch.tickers, cfg.model.target.horizon
    data, folds = training_problem(cfg, inputs, ports.store)
    columns = data.columns
    baseline = _baseline(data, folds)
    tuning = cfg.training.tuning
    study_name = options.study_name or tuning.study_name or study_prefix(cfg, inputs, folds)
    log.info(
        "training set: %d rows, %d features, %d folds; study %s",
        len(data.y),
        len(columns),
        len(folds),
        study_name,
    )
    lineage_tags = {
        "data_sha256": batch.sha256,
        "benchmark_sha256": inputs.benchmark_sha256,
        "benchmark": inputs.benchmark or "",
        "config_hash": lineage.config_hash(cfg),
        "feature_spec_hash": lineage.feature_spec_hash(cfg.model),
        "folds_hash": folds_hash(folds),
        "git_commit": lineage.git_commit(cfg.project_root),
        "seed": str(cfg.training.seed),
        "package_versions": lineage.package_versions(),
        "tickers": ",".join(tickers),
        "horizon": str(horizon),
        "study_name": study_name,
        "snapshot_ids": ",".join(snapshot_ids),
    }

    with ports.tracker.start_run("train") as parent:
        parent.log_params(
            {
                "horizon": horizon,
                "n_features": len(columns),
                "primary_metric": tuning.primary_metric,
                "direction": tuning.resolved_direction,
                **lineage_tags,
            }
        )
        parent.log_text(
            yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False),
            "config/resolved_config.yaml",
        )
        parent.log_metrics({f"baseline_zero_return_{k}": v for k, v in baseline.items()})
        comp = run_competition(
            cfg, ports.tracker, parent, data, folds, study_name, ports.progress, lineage_tags
        )
        best = comp.best
        oos = data.out_of_sample(folds, best.evaluation.predictions)
        report = walk_forward_report(
            oos,
            folds,
            cfg.training.strategy,
            horizon,
            comp.n_trials,
            comp.trial_sharpes,
            seed=cfg.training.seed,
        )
        parent.log_metrics({**best.evaluation.mean, **flat_metrics(report, "oos_")})
        for k, m in enumerate(best.evaluation.per_fold):
            parent.log_metrics({f"fold_{n}": v for n, v in m.items() if v is not None}, step=k)
        with tempfile.TemporaryDirectory() as tmp:
            for path in write_report_files(Path(tmp), report, oos, cfg.training.strategy, horizon):
                parent.log_artifact(path, "backtest")
            for path in comp.write_artifacts(Path(tmp)):
                parent.log_artifact(path, "competition")
        parent.log_text(
            selection_stability(best.evaluation.selected, data.columns), "selection/stability.csv"
        )

        decision = _gate(cfg, ports, inputs, comp, folds, options.force_promote)
        primary = tuning.primary_metric
        tags = {
            **lineage_tags,
            "candidate": best.name,
            "estimator": best.kind,
            "warmup_rows": str(best.warmup),
            "primary_metric": primary,
            primary: f"{best.best_value:.8g}",
            "n_trials": str(comp.n_trials),
            "trial_sharpe_var": repr(comp.trial_sharpe_variance),
            "promoted": str(decision.promoted).lower(),
            "promotion_reason": decision.reason,
            "force_promote": str(decision.forced).lower(),
        }
        mean = best.evaluation.mean
        description = (
            f"{best.name} ({best.kind}) from study {study_name}: mean over "
            f"{len(folds)} folds rmse {mean['rmse']:.6g}, mae {mean['mae']:.6g}, "
            f"directional accuracy {mean['directional_accuracy']:.4f}, strategy "
            f"sharpe {report['sharpe']}; {decision.reason}"
        )
        version = ports.registry.register(best.model_uri, best.run_id, tags, description)
        alias = (
            cfg.tracking.champion_alias
            if decision.promoted
            else cfg.training.promotion.challenger_alias
        )
        ports.registry.set_alias(alias, version, record=decision.promoted)
        parent.set_tags(
            {
                "registered_version": version,
                "promoted": str(decision.promoted),
                "promotion_reason": decision.reason,
            }
        )
        run_id = parent.run_id
    log.info("v%s -> @%s: %s", version, alias, decision.reason)

    return {
        "champion": {
            "candidate": best.name,
            "run_id": best.run_id,
            "parent_run_id": run_id,
            "registered_model": cfg.tracking.registered_model,
            "version": version,
            "model_uri": f"models:/{cfg.tracking.registered_model}/{version}",
            "alias": alias,
            "promoted": decision.promoted,
            "reason": decision.reason,
            "forced": decision.forced,
            "incumbent_version": decision.incumbent_version,
            "incumbent_value": decision.incumbent_value,
            "primary_metric": primary,
            "primary_value": best.best_value,
        },
        "metrics": best.evaluation.mean,
        "folds": [
            {
                "fold": f.fold,
                "train_start": str(f.train_start),
                "train_end": str(f.train_end),
                "test_start": str(f.test_start),
                "test_end": str(f.test_end),
                "train_rows": f.train_rows,
                "test_rows": f.test_rows,
                **m,
            }
            for f, m in zip(folds, best.evaluation.per_fold, strict=True)
        ],
        "baselines": {"zero_return": baseline},
        "backtest": report,
        "candidates": comp.summary(),
        "study_name": study_name,
        "n_trials": comp.n_trials,
        "data": {
            "rows": batch.frame.height,
            "tickers": list(tickers),
            "first_date": str(batch.frame["date"].min()),
            "last_date": str(batch.frame["date"].max()),
            "sha256": batch.sha256,
            "source": batch.source,
            "training_rows": len(data.y),
        },
        "lineage": lineage_tags,
        "features": list(columns),
        "horizon": horizon,
        "tracking_uri": ports.tracker.uri,
        "seconds": round(time.perf_counter() - started, 2),
    }
