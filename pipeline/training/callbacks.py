"""Optuna callbacks: one nested MLflow run per trial, and progress reporting.

Our own small Optuna -> MLflow bridge (the optuna-integration callback is deprecated). It logs
through the Tracker port with explicit run ids, so it is safe with ``n_jobs > 1`` threads.
Each trial run also carries ``trial/oos.parquet``: the out-of-sample rows of the folds the
trial ran, with their per-fold metrics (``TrialEvaluations`` hands them over from the
objective).
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline.domain import Fold, Run, Tracker

if TYPE_CHECKING:  # only for annotations: job.py imports this module, keep it light
    import polars as pl

    from pipeline.training.dataset import TrainingSet
    from pipeline.training.foldfit import FoldEvaluation

STATE_NAMES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}


def trial_table(
    data: TrainingSet, folds: Sequence[Fold], evaluation: FoldEvaluation
) -> pl.DataFrame:
    """The test rows of the folds that ran (``folds[k]`` gave ``evaluation.predictions[k]``):
    fold, date, ticker, y_true, y_pred, and each fold's metrics as ``fold_<metric>`` columns
    repeated on its rows, so that one file answers both "which rows" and "which scores"."""
    import polars as pl

    from pipeline.evaluation.results import Metrics

    oos = data.out_of_sample(list(folds), evaluation.predictions)
    rows = pl.DataFrame(
        {"fold": oos.fold, "date": oos.dates, "ticker": oos.tickers}
        | {"y_true": oos.y_true, "y_pred": oos.y_pred}
    )
    schema = {f"fold_{name}": pl.Float64 for name in Metrics.model_fields}
    scores = [list(m.model_dump().values()) for m in evaluation.per_fold]
    metrics = pl.DataFrame(scores, schema=schema, orient="row")  # undefined -> null
    # out_of_sample concatenates folds in order: fold k's score row repeats len(pred_k) times.
    sizes = [len(pred) for pred in evaluation.predictions]
    return pl.concat([rows, metrics[np.repeat(np.arange(len(sizes)), sizes)]], how="horizontal")


class TrialEvaluations:
    """Each running trial's FoldEvaluation, from the objective to ``TrialRunLogger``.

    Optuna calls this process's callbacks in the thread that ran the trial, right after it
    finished; the logger takes the trial's evaluation out, so only running trials are held.
    Keyed by (study name, trial number): unique even when threads share a study.
    """

    def __init__(self, data: TrainingSet, folds: Sequence[Fold]) -> None:
        self.data = data
        self.folds = list(folds)
        self._lock = threading.Lock()
        self._running: dict[tuple[str, int], FoldEvaluation] = {}

    def put(self, study: str, number: int, evaluation: FoldEvaluation) -> None:
        """Hold a trial's evaluation (filled fold by fold while the trial runs)."""
        with self._lock:
            self._running[(study, number)] = evaluation

    def pop_table(self, study: str, number: int) -> pl.DataFrame | None:
        """Drop the trial's evaluation and return its :func:`trial_table` (None: no fold ran)."""
        with self._lock:
            evaluation = self._running.pop((study, number), None)
        if evaluation is None or not evaluation.predictions:
            return None
        return trial_table(self.data, self.folds[: len(evaluation.predictions)], evaluation)

    def __len__(self) -> int:
        return len(self._running)


class TrialRunLogger:
    """Log every finished trial as a nested run under its candidate's run.

    With ``evaluations`` (the store the objective fills), the run also gets the trial's
    out-of-sample rows and per-fold metrics as ``trial/oos.parquet``.
    """

    def __init__(
        self,
        tracker: Tracker,
        candidate_run: Run,
        candidate: str,
        evaluations: TrialEvaluations | None = None,
    ) -> None:
        self.tracker = tracker
        self.parent = candidate_run
        self.candidate = candidate
        self.evaluations = evaluations

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        store = self.evaluations
        table = None if store is None else store.pop_table(study.study_name, trial.number)
        if table is None:
            self._log(study, trial, None)
            return
        # A private folder per trial: threads (n_jobs > 1) never share a file name.
        with tempfile.TemporaryDirectory(prefix="stockpipe-trial-") as folder:
            artifact = Path(folder) / "oos.parquet"
            table.write_parquet(artifact)
            self._log(study, trial, artifact)

    def _log(self, study: optuna.Study, trial: FrozenTrial, artifact: Path | None) -> None:
        per_fold = trial.user_attrs.get("per_fold", [])
        steps = [
            {k: float(v) for k, v in fold.items() if v is not None and math.isfinite(v)}
            for fold in per_fold
        ]
        # Early stopping: the boosting rounds each fold kept, as n_trees at the fold's step.
        for step, trees in zip(steps, trial.user_attrs.get("trees", []), strict=False):
            step["n_trees"] = float(trees)
        summary = {}
        if trial.value is not None and math.isfinite(trial.value):
            summary["objective"] = float(trial.value)
        self.tracker.log_trial(
            self.parent,
            name=f"{self.candidate}-trial-{trial.number}",
            params=trial.params,
            per_fold=steps,
            metrics=summary,
            tags={
                "optuna.trial_number": str(trial.number),
                "optuna.state": STATE_NAMES.get(trial.state, trial.state.name.lower()),
                "optuna.study": study.study_name,
            },
            state=STATE_NAMES.get(trial.state, "failed"),
            artifact=artifact,
        )


class Progress(Protocol):
    """Receives progress of the competition (a rich display, or nothing)."""

    def start(self, candidate: str, budget: int) -> None: ...

    def update(self, candidate: str, done: int, pruned: int, best: float | None) -> None: ...

    def finish(self, candidate: str) -> None: ...


class NoProgress:
    """The quiet default."""

    def start(self, candidate: str, budget: int) -> None:
        return None

    def update(self, candidate: str, done: int, pruned: int, best: float | None) -> None:
        return None

    def finish(self, candidate: str) -> None:
        return None


class ProgressCallback:
    """Feeds a Progress with trials done, pruned and best so far (thread-safe)."""

    def __init__(self, progress: Progress, candidate: str) -> None:
        self.progress = progress
        self.candidate = candidate
        self._lock = threading.Lock()
        self.started = time.monotonic()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        with self._lock:
            trials = study.get_trials(deepcopy=False)
            done = sum(t.state in STATE_NAMES for t in trials)
            pruned = sum(t.state == TrialState.PRUNED for t in trials)
            try:
                best: float | None = study.best_value
            except ValueError:
                best = None
            self.progress.update(self.candidate, done, pruned, best)
