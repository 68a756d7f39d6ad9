"""Optuna tuning of one candidate on walk-forward folds (search spaces are YAML data).

Each trial fits the candidate's pipeline tail on every fold's training rows and reports the
running mean of the primary metric after each fold, so the pruner can stop hopeless trials
early. Where studies live and how they sample and prune is ``studies.py``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline.domain import Fold
from pipeline.errors import ModelError
from pipeline.evaluation.report import fold_mean, per_period_sharpe
from pipeline.evaluation.results import Metrics
from pipeline.settings import (
    CandidateConfig,
    CandidatesConfig,
    ModelConfig,
    StrategyConfig,
    TrainingConfig,
    TuningConfig,
)
from pipeline.training.dataset import TrainingSet
from pipeline.training.foldfit import (
    EarlyStopping,
    FoldEvaluation,
    evaluate_params,
    fold_threads,
)
from pipeline.training.kept import BestEvaluations
from pipeline.training.stopping import checkpoint, stop_requested
from pipeline.training.studies import make_pruner, make_storage, param_sampler, wait_for_running

# FoldEvaluation and evaluate_params live in foldfit.py; both stay importable from here.
optuna.logging.set_verbosity(optuna.logging.WARNING)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
Callback = Callable[[optuna.Study, FrozenTrial], None]


# Receives each trial's FoldEvaluation (study name, trial number) before its first fold runs.
EvaluationSink = Callable[[str, int, FoldEvaluation], None]


def objective_value(per_fold: Sequence[Metrics], metric: str, direction: str) -> float:
    """The fold mean of the primary metric; undefined in every fold counts as the worst."""
    value = getattr(fold_mean(per_fold), metric)
    if value is not None:
        return float(value)
    return math.inf if direction == "minimize" else -math.inf


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

    @property
    def refit_params(self) -> dict[str, Any]:
        """The best params a refit on all rows uses: with early stopping, ``n_estimators`` is
        the rounds the folds chose (no validation rows are left out of that fit)."""
        trees = self.evaluation.chosen_trees
        return self.best_params if trees is None else {**self.best_params, "n_estimators": trees}


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

    @cached_property
    def fold_jobs(self) -> int:
        """Folds fitted at once: ``tuning.fold_jobs``, or (auto) the cores each trial has,
        fewer for a matrix whose fold copies would outgrow their budget (:func:`fold_threads`)."""
        jobs = self.tuning.fold_workers(len(self.folds))
        if self.tuning.fold_jobs is not None:
            return jobs
        return fold_threads(jobs, self.data, self.folds)

    def evaluate(
        self,
        cand: CandidateConfig,
        params: Mapping[str, Any],
        on_fold: Callable[[int, list[Metrics]], None] | None = None,
        into: FoldEvaluation | None = None,
    ) -> FoldEvaluation:
        """``params`` of ``cand`` on every fold, with its early stopping if it has one."""
        stop = EarlyStopping.of(cand, self.model_cfg.target.horizon)
        shared = (self.data, self.folds, self.seed, self.strategy, on_fold, into)
        kind, jobs = cand.estimator, self.fold_jobs
        return evaluate_params(self.model_cfg, kind, params, *shared, fold_jobs=jobs, stop=stop)

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


def _record_fold(trial: optuna.Trial, ev: FoldEvaluation, ctx: TuningContext) -> None:
    """Keep the folds scored so far, and the Sharpe over them, on the trial.

    Recorded after every fold rather than at the end, so a trial the pruner stops still says
    how its strategy did on the folds it ran (the deflated Sharpe counts every trial tried).
    With early stopping, the rounds each fold kept too (``trees``: the trial run's n_trees).
    """
    per_fold = ev.per_fold
    trial.set_user_attr("per_fold", [m.model_dump() for m in per_fold])
    if ev.trees:
        trial.set_user_attr("trees", list(ev.trees))
    sharpe = per_period_sharpe(fold_mean(per_fold), ctx.strategy, ctx.model_cfg.target.horizon)
    trial.set_user_attr("sharpe", sharpe if math.isfinite(sharpe) else None)


def _objective(
    cand: CandidateConfig, ctx: TuningContext, keep: EvaluationSink | None
) -> Callable[[optuna.Trial], float]:
    sample = param_sampler(cand.space)
    metric, direction = ctx.tuning.primary_metric, ctx.tuning.resolved_direction

    def objective(trial: optuna.Trial) -> float:
        params = {**cand.params, **sample(trial)}
        ev = FoldEvaluation(per_fold=[])

        def report(step: int, per_fold: list[Metrics]) -> None:
            _record_fold(trial, ev, ctx)
            value = objective_value(per_fold, metric, direction)
            if math.isfinite(value):
                trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        if keep is not None:  # handed over first: a pruned or failed trial keeps its folds
            keep(trial.study.study_name, trial.number, ev)
        try:
            ctx.evaluate(cand, params, report, ev)
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
    """Tune one candidate; its best trial's evaluation is the one that trial computed (or,
    run elsewhere, a re-evaluation of its params: the same bits)."""
    started = time.perf_counter()
    study = open_study(cand, ctx, study_name)
    done = sum(t.state in FINISHED for t in study.trials)
    if done:
        # A resumed study gets a sampler seed of its own, or it would replay the first trials.
        study = open_study(cand, ctx, study_name, sampler_seed=ctx.seed + done)
    kept = BestEvaluations(ctx.tuning.resolved_direction, then=keep)
    run_trials(cand, ctx, study, budget, [*callbacks, kept], kept.put)
    if ctx.storage is not None:
        wait_for_running(study, ctx.tuning.wait_for_workers_seconds)
    best = _best_trial(cand, study)
    best_params = {**cand.params, **best.params}
    evaluation = kept.get(study.study_name, best.number)
    if evaluation is None:  # run by another worker, or before a resume
        evaluation = ctx.evaluate(cand, best_params)
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
