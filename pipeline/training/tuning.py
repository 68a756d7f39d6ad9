"""Optuna tuning of one candidate on walk-forward folds (search spaces are YAML data)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from sklearn.pipeline import Pipeline

from pipeline.domain import Fold
from pipeline.evaluation.metrics import mean_over_folds, score_all
from pipeline.evaluation.report import strategy_sharpe
from pipeline.model.pipeline import build_tail
from pipeline.model.selectors import kept_features
from pipeline.settings import (
    CandidateConfig,
    CategoricalSpace,
    FloatSpace,
    IntSpace,
    ModelConfig,
    ParamSpace,
    StrategyConfig,
)
from pipeline.training.dataset import TrainingSet

optuna.logging.set_verbosity(optuna.logging.WARNING)


def param_sampler(space: Mapping[str, ParamSpace]) -> Callable[[optuna.Trial], dict[str, Any]]:
    """Turn a declarative search space into a ``trial -> params`` function."""

    def sample(trial: optuna.Trial) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name, spec in space.items():
            if isinstance(spec, IntSpace):
                params[name] = trial.suggest_int(
                    name, spec.low, spec.high, step=spec.step, log=spec.log
                )
            elif isinstance(spec, FloatSpace):
                params[name] = trial.suggest_float(
                    name, spec.low, spec.high, step=spec.step, log=spec.log
                )
            elif isinstance(spec, CategoricalSpace):
                params[name] = trial.suggest_categorical(name, list(spec.choices))
        return params

    return sample


@dataclass
class FoldEvaluation:
    """Per-fold metrics and out-of-sample predictions of one parameter set."""

    per_fold: list[dict[str, float]]
    predictions: list[np.ndarray] = field(default_factory=list)
    selected: list[list[str]] = field(default_factory=list)

    @property
    def mean(self) -> dict[str, float]:
        return mean_over_folds(self.per_fold)


def evaluate_params(
    model_cfg: ModelConfig,
    kind: str,
    params: Mapping[str, Any],
    data: TrainingSet,
    folds: list[Fold],
    seed: int,
    on_fold: Callable[[int, float], None] | None = None,
) -> FoldEvaluation:
    """Fit the pipeline tail on each fold's train rows and score its test rows."""
    result = FoldEvaluation(per_fold=[])
    for fold in folds:
        train, test = data.masks(fold)
        tail = Pipeline(build_tail(model_cfg, kind, params, seed, len(data.columns)))
        tail.fit(data.X[train], data.y[train])
        pred = np.asarray(tail.predict(data.X[test]), dtype=float)
        metrics = score_all(data.y[test], pred)
        result.per_fold.append(metrics)
        result.predictions.append(pred)
        result.selected.append(kept_features(tail.named_steps.get("select"), data.columns))
        if on_fold is not None:
            on_fold(fold.fold, float(np.mean([m["rmse"] for m in result.per_fold])))
    return result


@dataclass
class CandidateResult:
    """Outcome of tuning one candidate."""

    name: str
    kind: str
    best_value: float
    best_params: dict[str, Any]
    n_trials: int
    n_pruned: int
    seconds: float
    evaluation: FoldEvaluation
    study: optuna.Study

    @property
    def trial_sharpes(self) -> list[float]:
        """Per-period strategy Sharpe of every completed trial (for the deflated Sharpe)."""
        values = (t.user_attrs.get("sharpe") for t in self.study.trials)
        return [float(v) for v in values if v is not None]


def tune_candidate(
    cand: CandidateConfig,
    model_cfg: ModelConfig,
    data: TrainingSet,
    folds: list[Fold],
    seed: int,
    n_trials: int,
    strategy: StrategyConfig | None = None,
) -> CandidateResult:
    """Seeded TPE over the candidate's space; objective = mean fold RMSE (lower is better)."""
    sample = param_sampler(cand.space)
    started = time.perf_counter()

    def objective(trial: optuna.Trial) -> float:
        params = {**cand.params, **sample(trial)}

        def report(step: int, running_rmse: float) -> None:
            trial.report(running_rmse, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        ev = evaluate_params(model_cfg, cand.estimator, params, data, folds, seed, report)
        trial.set_user_attr("per_fold", ev.per_fold)
        if strategy is not None:
            # Every trial's strategy Sharpe feeds the deflated Sharpe of the eventual winner.
            oos = data.out_of_sample(folds, ev.predictions)
            sr = strategy_sharpe(oos, strategy, model_cfg.target.horizon)
            trial.set_user_attr("sharpe", sr if np.isfinite(sr) else None)
        return ev.mean["rmse"]

    study = optuna.create_study(
        study_name=cand.name,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )
    study.optimize(objective, n_trials=n_trials, timeout=cand.timeout_seconds)
    best_params = {**cand.params, **study.best_params}
    evaluation = evaluate_params(model_cfg, cand.estimator, best_params, data, folds, seed)
    states = [t.state for t in study.trials]
    return CandidateResult(
        name=cand.name,
        kind=cand.estimator,
        best_value=float(study.best_value),
        best_params=best_params,
        n_trials=len(study.trials),
        n_pruned=sum(s == optuna.trial.TrialState.PRUNED for s in states),
        seconds=time.perf_counter() - started,
        evaluation=evaluation,
        study=study,
    )
