"""One parameter set on the walk-forward folds: fit each fold's training rows, score its test rows.

Tuning, the best trial's record and the final refit's tree count all come from here. A fold fit
hands the pipeline tail a copy of the fold's rows to work on in place
(:func:`pipeline.model.fitting.fit_owned`): the same bits as ``Pipeline.fit`` on ``X[train]``,
without the imputer's and the scaler's copies, and without the median imputer's sort when
neither the training nor the test rows hold a NaN.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.domain import Fold
from pipeline.evaluation.report import evaluate, fold_mean
from pipeline.evaluation.results import Metrics
from pipeline.model.fitting import Holdout, fit_owned
from pipeline.model.pipeline import build_tail
from pipeline.model.selectors import kept_features
from pipeline.settings import CandidateConfig, ModelConfig, StrategyConfig
from pipeline.training.dataset import TrainingSet
from pipeline.training.ordered import in_order
from pipeline.training.stopping import checkpoint

# A fold thread holds a copy of its fold's training rows, their selected columns and the
# estimator's working set: up to ~2.5 times the fold's rows (LightGBM, 400k rows, k = 27).
FOLD_WORKING_SET = 2.5
# What the fold threads of a trial may hold at once when `fold_jobs` is auto: twice the feature
# matrix, or this much if more. Small matrices keep a thread per core; from ~100 MB on
# (400k rows of 37 features) folds are fitted one at a time, which keeps train's peak RSS
# within ~4x the matrix over the process baseline (fold threads barely paid at that size).
THREADS_BUDGET_BYTES = 256 * 2**20


def fold_threads(wanted: int, data: TrainingSet, folds: list[Fold]) -> int:
    """Folds to fit at once under ``fold_jobs: null`` (auto): ``wanted`` (the cores each trial
    has), fewer when their copies of the largest fold's rows would outgrow the budget above.
    Results never depend on it, only speed and memory."""
    rows = max(int(data.masks(fold)[0].sum()) for fold in folds)
    per_thread = FOLD_WORKING_SET * rows * data.X.shape[1] * data.X.itemsize
    budget = max(2 * data.X.nbytes, THREADS_BUDGET_BYTES)
    return max(1, min(wanted, int(budget // max(per_thread, 1.0))))


@dataclass
class FoldEvaluation:
    """Per-fold metrics, out-of-sample predictions and kept features of one parameter set,
    and with early stopping the boosting rounds each fold kept."""

    per_fold: list[Metrics]
    predictions: list[np.ndarray] = field(default_factory=list)
    selected: list[list[str]] = field(default_factory=list)
    trees: list[int] = field(default_factory=list)

    @property
    def mean(self) -> Metrics:
        """Mean of every metric over folds (:func:`pipeline.evaluation.report.fold_mean`)."""
        return fold_mean(self.per_fold)

    @property
    def chosen_trees(self) -> int | None:
        """The rounds a refit on all rows uses: the folds' median best iteration (the upper
        one of an even count, so always a count some fold chose); None without stopping."""
        return statistics.median_high(self.trees) if self.trees else None


@dataclass(frozen=True)
class EarlyStopping:
    """A boosted candidate's early stopping: patience, validation days and the purge."""

    rounds: int
    days: int  # the last trading days of each fold's training window
    gap: int  # days purged between fitting and validation rows (the horizon)

    @classmethod
    def of(cls, cand: CandidateConfig, horizon: int) -> EarlyStopping | None:
        """The candidate's early stopping (None: off, the default)."""
        if cand.early_stopping_rounds is None:
            return None
        return cls(cand.early_stopping_rounds, cand.validation_days, horizon)


@dataclass(frozen=True)
class FoldFit:
    """One fold's fitted outcome: test predictions, features kept, rounds kept."""

    prediction: np.ndarray
    kept: list[str]
    trees: int | None


def fit_fold(
    data: TrainingSet,
    fold: Fold,
    steps: list[tuple[str, Any]],
    kind: str,
    stop: EarlyStopping | None,
) -> FoldFit:
    """Fit ``steps`` on the fold's training rows (less the holdout when stopping early) and
    predict its test rows. Every array handed over is a fresh copy, fitted in place."""
    train, test = data.masks(fold)
    missing = data.missing_rows
    impute = bool(missing[train].any() or missing[test].any())
    holdout = None
    if stop is not None:
        train, valid = data.holdout(fold, stop.days, stop.gap)
        holdout = Holdout(data.X[valid], data.y[valid], stop.rounds, kind)
    tail, trees = fit_owned(steps, data.X[train], data.y[train], impute=impute, holdout=holdout)
    pred = np.asarray(tail.predict(data.X[test]), dtype=float)
    return FoldFit(pred, kept_features(tail.named_steps.get("select"), data.columns), trees)


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
    stop: EarlyStopping | None = None,
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

    def fit(fold: Fold) -> FoldFit:
        steps = build_tail(model_cfg, kind, params, seed, len(data.columns))
        return fit_fold(data, fold, steps, kind, stop)

    # closing(): a pruned trial's exception would keep the generator (and its running fits)
    # alive in the traceback; closing it waits for them before the next trial starts.
    # A stop request (SIGTERM) is raised between folds, from here: closing() then joins the
    # fold threads, so no native fit is running while the job unwinds.
    checkpoint()
    with contextlib.closing(in_order(fit, folds, fold_jobs)) as fitted:
        for fold, done in zip(folds, fitted, strict=True):
            checkpoint()
            oos = data.out_of_sample([fold], [done.prediction])
            result.per_fold.append(evaluate(oos, strategy, horizon))
            result.predictions.append(done.prediction)
            result.selected.append(done.kept)
            if done.trees is not None:
                result.trees.append(done.trees)
            if on_fold is not None:
                on_fold(fold.fold, result.per_fold)
    return result
