"""The `train` use case: data -> features -> tuned candidates -> tracked, registered champion."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.pipeline import Pipeline

from pipeline.data.inputs import load_inputs, store_inputs
from pipeline.domain import Fold, PriceSource, PriceStore, Registry, Tracker
from pipeline.errors import ConfigError
from pipeline.evaluation.files import write_report_files
from pipeline.evaluation.metrics import mean_over_folds, score_all
from pipeline.evaluation.report import flat_metrics, walk_forward_report
from pipeline.features.spec import build_feature_defs, total_warmup
from pipeline.model.estimators import check_params
from pipeline.model.pipeline import (
    SELECTOR_PARAM_PREFIX,
    build_tail,
    compose_fitted,
    feature_columns,
)
from pipeline.model.transformer import PolarsFeatures
from pipeline.settings import StockpipeConfig
from pipeline.training.dataset import TrainingSet, build_training_set
from pipeline.training.tuning import CandidateResult, tune_candidate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainPorts:
    """Everything the use case talks to, injected by the composition root or by tests."""

    source: PriceSource
    store: PriceStore
    tracker: Tracker
    registry: Registry
    benchmark: PriceSource | None = None


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
    f = cfg.training.folds
    return {**f.model_dump(), "horizon": cfg.model.target.horizon}


def config_hash(cfg: StockpipeConfig) -> str:
    """Stable hash of the resolved configuration (paths excluded)."""
    doc = cfg.model_dump(mode="json", exclude={"project_root", "config_dir"})
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _fold_rows(folds: list[Fold], per_fold: list[dict[str, float]]) -> list[dict[str, Any]]:
    return [
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
        for f, m in zip(folds, per_fold, strict=True)
    ]


def _baseline(data: TrainingSet, folds: list[Fold]) -> dict[str, float]:
    per_fold = []
    for fold in folds:
        _, test = data.masks(fold)
        per_fold.append(score_all(data.y[test], np.zeros(int(test.sum()))))
    return mean_over_folds(per_fold)


def _refit(cfg: StockpipeConfig, best: CandidateResult, data: TrainingSet) -> Pipeline:
    tail = Pipeline(
        build_tail(cfg.model, best.kind, best.best_params, cfg.training.seed, len(data.columns))
    )
    tail.fit(data.X, data.y)
    features = PolarsFeatures(spec=cfg.model.features.model_dump_json(), columns=data.columns)
    features.fit(data.raw)
    return compose_fitted(features, tail)


def selection_stability(selected: list[list[str]], columns: tuple[str, ...]) -> str:
    """CSV of how often each feature survived selection across folds, most stable first."""
    n = max(len(selected), 1)
    counts = {c: sum(c in kept for kept in selected) for c in columns}
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    lines = ["feature,folds_kept,share"] + [f"{c},{k},{k / n:.3f}" for c, k in rows]
    return "\n".join(lines) + "\n"


def _check_candidates(cfg: StockpipeConfig) -> None:
    for cand in cfg.candidates.candidates:
        names = [k for k in (*cand.params, *cand.space) if not k.startswith(SELECTOR_PARAM_PREFIX)]
        try:
            check_params(cand.estimator, dict.fromkeys(names), cfg.training.seed)
        except ValueError as exc:
            raise ConfigError(f"model_candidates.yaml: candidate '{cand.name}': {exc}") from exc


def train(cfg: StockpipeConfig, ports: TrainPorts) -> dict[str, Any]:
    """Run the whole training job; return the machine-readable summary.

    Order matters for "nothing is written on failure": the data is validated and the tracker
    reached before the warehouse or the registry is touched.
    """
    started = time.perf_counter()
    _check_candidates(cfg)
    inputs = load_inputs(cfg.model.features, ports.source, ports.benchmark)
    batch = inputs.batch
    ports.tracker.check()
    store_inputs(ports.store, inputs)
    tickers = batch.tickers
    horizon = cfg.model.target.horizon
    defs = build_feature_defs(cfg.model.features)
    columns = feature_columns(cfg.model)
    data = build_training_set(inputs.history(ports.store), defs, columns, horizon)
    folds = ports.store.folds(tickers, fold_params(cfg))
    baseline = _baseline(data, folds)
    log.info("training set: %d rows, %d features, %d folds", len(data.y), len(columns), len(folds))

    results: list[CandidateResult] = []
    with ports.tracker.start_run("train") as parent:
        parent.log_params(
            {
                "horizon": horizon,
                "seed": cfg.training.seed,
                "tickers": ",".join(tickers),
                "n_features": len(columns),
                "data_sha256": batch.sha256,
                "benchmark_sha256": inputs.benchmark_sha256,
                "config_hash": config_hash(cfg),
                "folds_hash": folds_hash(folds),
            }
        )
        parent.log_text(
            yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False),
            "config/resolved_config.yaml",
        )
        parent.log_metrics({f"baseline_zero_return_{k}": v for k, v in baseline.items()})
        for cand in (c for c in cfg.candidates.candidates if c.enabled):
            n_trials = cfg.training.n_trials or cand.n_trials
            with ports.tracker.start_run(cand.name, parent=parent) as child:
                result = tune_candidate(
                    cand,
                    cfg.model,
                    data,
                    folds,
                    cfg.training.seed,
                    n_trials,
                    cfg.training.strategy,
                )
                child.log_params({"estimator": cand.estimator, **result.best_params})
                child.log_metrics(result.evaluation.mean)
                for k, m in enumerate(result.evaluation.per_fold):
                    child.log_metrics({f"fold_{name}": v for name, v in m.items()}, step=k)
                child.log_metrics({"n_trials": result.n_trials, "n_pruned": result.n_pruned})
                child.log_text(
                    selection_stability(result.evaluation.selected, data.columns),
                    "selection/stability.csv",
                )
            log.info(
                "%s: best mean rmse %.6f after %d trials (%.1fs)",
                cand.name,
                result.best_value,
                result.n_trials,
                result.seconds,
            )
            results.append(result)

        best = min(results, key=lambda r: r.best_value)
        oos = data.out_of_sample(folds, best.evaluation.predictions)
        n_trials = sum(r.n_trials for r in results)
        sharpes = [s for r in results for s in r.trial_sharpes]
        report = walk_forward_report(
            oos, folds, cfg.training.strategy, horizon, n_trials, sharpes, seed=cfg.training.seed
        )
        parent.log_metrics(flat_metrics(report, "oos_"))
        with tempfile.TemporaryDirectory() as tmp:
            for path in write_report_files(Path(tmp), report, oos, cfg.training.strategy, horizon):
                parent.log_artifact(path, "backtest")
        model = _refit(cfg, best, data)
        example = data.raw.tail(total_warmup(defs) + 5).to_pandas()
        tags = {
            "candidate": best.name,
            "estimator": best.kind,
            "horizon": str(horizon),
            "warmup_rows": str(model.named_steps["features"].warmup_),
            "data_sha256": batch.sha256,
            "benchmark_sha256": inputs.benchmark_sha256,
            "config_hash": config_hash(cfg),
            "benchmark": inputs.benchmark or "",
            "tickers": ",".join(tickers),
            "seed": str(cfg.training.seed),
            "primary_metric": "rmse",
            "rmse": f"{best.best_value:.8f}",
            "folds_hash": folds_hash(folds),
            "n_trials": str(n_trials),
            "trial_sharpe_var": repr(float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0),
        }
        parent.log_params({"champion_candidate": best.name})
        parent.log_text(
            selection_stability(best.evaluation.selected, data.columns), "selection/stability.csv"
        )
        parent.log_metrics(best.evaluation.mean)
        for k, m in enumerate(best.evaluation.per_fold):
            parent.log_metrics({f"fold_{name}": v for name, v in m.items()}, step=k)
        model_uri = parent.log_model(model, example, tags)
        version = ports.registry.register(model_uri, parent.run_id, tags)
        ports.registry.set_alias(cfg.tracking.champion_alias, version)
        parent.set_tags({"registered_version": version})
        run_id = parent.run_id

    return {
        "champion": {
            "candidate": best.name,
            "run_id": run_id,
            "registered_model": cfg.tracking.registered_model,
            "version": version,
            "model_uri": f"models:/{cfg.tracking.registered_model}/{version}",
            "alias": cfg.tracking.champion_alias,
            "promoted": True,
        },
        "metrics": best.evaluation.mean,
        "folds": _fold_rows(folds, best.evaluation.per_fold),
        "baselines": {"zero_return": baseline},
        "backtest": report,
        "folds_hash": folds_hash(folds),
        "candidates": [
            {
                "name": r.name,
                "estimator": r.kind,
                "best_value": r.best_value,
                "n_trials": r.n_trials,
                "n_pruned": r.n_pruned,
                "best_params": r.best_params,
                "seconds": round(r.seconds, 2),
                "metrics": r.evaluation.mean,
            }
            for r in results
        ],
        "data": {
            "rows": batch.frame.height,
            "tickers": list(tickers),
            "first_date": str(batch.frame["date"].min()),
            "last_date": str(batch.frame["date"].max()),
            "sha256": batch.sha256,
            "source": batch.source,
            "training_rows": len(data.y),
        },
        "features": list(columns),
        "horizon": horizon,
        "tracking_uri": ports.tracker.uri,
        "seconds": round(time.perf_counter() - started, 2),
    }
