"""Optuna tuning of one candidate on walk-forward folds (search spaces are YAML data).

Each trial fits the candidate's pipeline tail on every fold's training rows and reports the
running mean of the primary metric after each fold, so the pruner can stop hopeless trials
early. Where studies live and how they sample and prune is ``studies.py``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState
from sklearn.pipeline import Pipeline

from pipeline.domain import Fold
from pipeline.errors import ModelError
from pipeline.evaluation.report import evaluate, fold_mean, per_period_sharpe
from pipeline.evaluation.results import Metrics
from pipeline.model.pipeline import build_tail
from pipeline.model.selectors import kept_features
from pipeline.settings import (
    CandidateConfig,
    CandidatesConfig,
    ModelConfig,
    StrategyConfig,
    TrainingConfig,
    TuningConfig,
)
from pipeline.training.dataset import TrainingSet
from pipeline.training.ordered import in_order
from pipeline.training.stopping import checkpoint, stop_requested
from pipeline.training.studies import make_pruner, make_storage, param_sampler, wait_for_running

optuna.logging.set_verbosity(optuna.logging.WARNING)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
Callback = Callable[[optuna.Study, FrozenTrial], None]


@dataclass
class FoldEvaluation:
    """Per-fold metrics, out-of-sample predictions and kept features of one parameter set."""

    per_fold: list[Metrics]
    predictions: list[np.ndarray] = field(default_factory=list)
    selected: list[list[str]] = field(default_factory=list)

    @property
    def mean(self) -> Metrics:
        """Mean of every metric over folds (:func:`pipeline.evaluation.report.fold_mean`)."""
        return fold_mean(self.per_fold)


# Receives each trial's FoldEvaluation (study name, trial number) before its first fold runs.
EvaluationSink = Callable[[str, int, FoldEvaluation], None]


def objective_value(per_fold: Sequence[Metrics], metric: str, direction: str) -> float:
    """The fold mean of the primary metric; undefined in every fold counts as the worst."""
    value = getattr(fold_mean(per_fold), metric)
    if value is not None:
        return float(value)
    return math.inf if direction == "minimize" else -math.inf


def evaluate_params(
    model_cfg: ModelConfig,
    kind: str,
    params: Mapping[str, Any],
    data: TrainingSet,
    folds: list[Fold],
    seed: int,
    strategy: StrategyConfig,
    on_fold: Callable[[int, list[Metrics]], None] | None = None,
    into: FoldEvaluation | None = None,
    *,
    fold_jobs: int = 1,
) -> FoldEvaluation:
    """Fit the pipeline tail on each fold's train rows and score its test rows, filling ``into``
    fold by fold (so a trial that ``on_fold`` prunes leaves its caller the folds that ran).

    ``fold_jobs`` > 1 fits that many folds at once in threads (the estimators release the
    GIL). Each fit is the same single-threaded computation whatever runs beside it, and the
    folds are scored and reported in order, so results, pruning decisions and the folds a
    pruned trial keeps are the same bits as with one job.
    """
    result = FoldEvaluation(per_fold=[]) if into is None else into
    horizon = model_cfg.target.horizon

    def fit(fold: Fold) -> tuple[np.ndarray, list[str]]:
        train, test = data.masks(fold)
        tail = Pipeline(build_tail(model_cfg, kind, params, seed, len(data.columns)))
        tail.fit(data.X[train], data.y[train])
        pred = np.asarray(tail.predict(data.X[test]), dtype=float)
        return pred, kept_features(tail.named_steps.get("select"), data.columns)

    # closing(): a pruned trial's exception would keep the generator (and its running fits)
    # alive in the traceback; closing it waits for them before the next trial starts.
    # A stop request (SIGTERM) is raised between folds, from here: closing() then joins the
    # fold threads, so no native fit is running while the job unwinds.
    checkpoint()
    with contextlib.closing(in_order(fit, folds, fold_jobs)) as fitted:
        for fold, (pred, kept) in zip(folds, fitted, strict=True):
            checkpoint()
            oos = data.out_of_sample([fold], [pred])
            result.per_fold.append(evaluate(oos, strategy, horizon))
            result.predictions.append(pred)
            result.selected.append(kept)
            if on_fold is not None:
                on_fold(fold.fold, result.per_fold)
    return result


@dataclass
class CandidateResult:
    """Outcome of tuning one candidate (over every worker's trials of its study)."""

    name: str
    kind: str
    best_value: float
    best_params: dict[str, Any]
    n_trials: int
    n_pruned: int
    n_failed: int
    seconds: float
    evaluation: FoldEvaluation
    study: optuna.Study
    budget: int = 0  # trials asked for
    timed_out: bool = False  # the opt-in timeout_seconds stopped the study before its budget

    @property
    def trial_sharpes(self) -> list[float]:
        """Per-period Sharpe of every finished trial that has one, pruned trials included.

        A pruned trial's Sharpe is over the folds it ran (see :func:`_record_fold`): it was a
        configuration tried, so the deflated Sharpe counts it in N and in the variance.
        """
        values = (t.user_attrs.get("sharpe") for t in self.study.trials if t.state in FINISHED)
        return [float(v) for v in values if v is not None]


@dataclass(frozen=True)
class TuningContext:
    """What every trial of every candidate shares."""

    model_cfg: ModelConfig
    data: TrainingSet
    folds: list[Fold]
    seed: int
    strategy: StrategyConfig
    tuning: TuningConfig
    storage: optuna.storages.BaseStorage | None

    @property
    def fold_jobs(self) -> int:
        """Folds fitted at once: ``tuning.fold_jobs``, or the cores each trial has."""
        return self.tuning.fold_workers(len(self.folds))

    @classmethod
    def from_config(
        cls,
        model_cfg: ModelConfig,
        training: TrainingConfig,
        root: Path,
        data: TrainingSet,
        folds: list[Fold],
    ) -> TuningContext:
        """The context every process of one competition (coordinator or worker) builds.

        ``root`` resolves a relative journal file in ``training.tuning.storage``.
        """
        tuning = training.tuning
        storage = make_storage(tuning.storage, root)
        return cls(model_cfg, data, folds, training.seed, training.strategy, tuning, storage)


def entrants(
    candidates: CandidatesConfig, n_trials: int | None
) -> list[tuple[CandidateConfig, int]]:
    """Every enabled candidate with its trial budget (``n_trials`` overrides each one's)."""
    return [(c, n_trials or c.n_trials) for c in candidates.candidates if c.enabled]


def _record_fold(trial: optuna.Trial, per_fold: list[Metrics], ctx: TuningContext) -> None:
    """Keep the folds scored so far, and the Sharpe over them, on the trial.

    Recorded after every fold rather than at the end, so a trial the pruner stops still says
    how its strategy did on the folds it ran (the deflated Sharpe counts every trial tried).
    """
    trial.set_user_attr("per_fold", [m.model_dump() for m in per_fold])
    sharpe = per_period_sharpe(fold_mean(per_fold), ctx.strategy, ctx.model_cfg.target.horizon)
    trial.set_user_attr("sharpe", sharpe if math.isfinite(sharpe) else None)


def _objective(
    cand: CandidateConfig, ctx: TuningContext, keep: EvaluationSink | None
) -> Callable[[optuna.Trial], float]:
    sample = param_sampler(cand.space)
    metric, direction = ctx.tuning.primary_metric, ctx.tuning.resolved_direction

    def objective(trial: optuna.Trial) -> float:
        params = {**cand.params, **sample(trial)}

        def report(step: int, per_fold: list[Metrics]) -> None:
            _record_fold(trial, per_fold, ctx)
            value = objective_value(per_fold, metric, direction)
            if math.isfinite(value):
                trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        ev = FoldEvaluation(per_fold=[])
        if keep is not None:  # handed over first: a pruned or failed trial keeps its folds
            keep(trial.study.study_name, trial.number, ev)
        shared = (ctx.data, ctx.folds, ctx.seed, ctx.strategy)
        try:
            evaluate_params(
                ctx.model_cfg, cand.estimator, params, *shared, report, ev, fold_jobs=ctx.fold_jobs
            )
        except (ValueError, ArithmeticError) as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise
        return objective_value(ev.per_fold, metric, direction)

    return objective


def open_study(
    cand: CandidateConfig, ctx: TuningContext, study_name: str, sampler_seed: int | None = None
) -> optuna.Study:
    """Create or load the candidate's study (racing workers may both call this safely).

    Each process of a shared study needs its own ``sampler_seed``: with the same seed, every
    worker would draw the same start-up parameters and duplicate the others' trials.
    """
    return optuna.create_study(
        study_name=f"{study_name}.{cand.name}",
        storage=ctx.storage,
        load_if_exists=True,
        direction=ctx.tuning.resolved_direction,
        sampler=optuna.samplers.TPESampler(seed=ctx.seed if sampler_seed is None else sampler_seed),
        pruner=make_pruner(ctx.tuning),
    )


def run_trials(
    cand: CandidateConfig,
    ctx: TuningContext,
    study: optuna.Study,
    budget: int,
    callbacks: Sequence[Callback] = (),
    keep: EvaluationSink | None = None,
) -> None:
    """Run trials until the study holds ``budget`` finished trials (from any worker); ``keep``
    receives each trial's evaluation, which this process's callbacks may then read."""
    done = sum(t.state in FINISHED for t in study.trials)
    remaining = max(budget - done, 0)
    if remaining == 0:
        return
    study.optimize(
        _objective(cand, ctx, keep),
        n_trials=remaining,
        timeout=cand.timeout_seconds,
        n_jobs=ctx.tuning.n_jobs,
        callbacks=[
            optuna.study.MaxTrialsCallback(budget, states=FINISHED),
            *callbacks,
            stop_at_trial_boundary,
        ],
        catch=(ValueError, ArithmeticError),
    )
    checkpoint()  # a study stopped by a stop request ends the job here


def stop_at_trial_boundary(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna callback: on a stop request, start no further trial (after this one's own
    callbacks have logged it); the caller then raises the stop."""
    if stop_requested():
        study.stop()


def _best_trial(cand: CandidateConfig, study: optuna.Study) -> FrozenTrial:
    """The study's best trial; a study where no trial completed says why, with the last error."""
    if not any(t.state == TrialState.COMPLETE for t in study.trials):
        errors = [t.user_attrs["error"] for t in study.trials if "error" in t.user_attrs]
        raise ModelError(
            f"candidate '{cand.name}': no trial completed"
            + (f"; last error: {errors[-1]}" if errors else "")
        )
    return study.best_trial


def tune_candidate(
    cand: CandidateConfig,
    ctx: TuningContext,
    study_name: str,
    budget: int,
    callbacks: Sequence[Callback] = (),
    keep: EvaluationSink | None = None,
) -> CandidateResult:
    """Tune one candidate and re-evaluate its best trial locally for predictions."""
    started = time.perf_counter()
    study = open_study(cand, ctx, study_name)
    done = sum(t.state in FINISHED for t in study.trials)
    if done:
        # A resumed study gets a sampler seed of its own, or it would replay the first trials.
        study = open_study(cand, ctx, study_name, sampler_seed=ctx.seed + done)
    run_trials(cand, ctx, study, budget, callbacks, keep)
    if ctx.storage is not None:
        wait_for_running(study, ctx.tuning.wait_for_workers_seconds)
    best = _best_trial(cand, study)
    best_params = {**cand.params, **best.params}
    evaluation = evaluate_params(
        ctx.model_cfg,
        cand.estimator,
        best_params,
        ctx.data,
        ctx.folds,
        ctx.seed,
        ctx.strategy,
        fold_jobs=ctx.fold_jobs,
    )
    states = [t.state for t in study.trials]
    finished = sum(s in FINISHED for s in states)
    return CandidateResult(
        name=cand.name,
        kind=cand.estimator,
        best_value=float(best.value),  # type: ignore[arg-type]
        best_params=best_params,
        n_trials=finished,
        n_pruned=sum(s == TrialState.PRUNED for s in states),
        n_failed=sum(s == TrialState.FAIL for s in states),
        seconds=time.perf_counter() - started,
        evaluation=evaluation,
        study=study,
        budget=budget,
        timed_out=cand.timeout_seconds is not None and finished < budget,
    )
