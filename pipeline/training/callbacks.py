"""Optuna callbacks: one nested MLflow run per trial, and progress reporting.

Our own small Optuna -> MLflow bridge (the optuna-integration callback is deprecated). It logs
through the Tracker port with explicit run ids, so it is safe with ``n_jobs > 1`` threads.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline.domain import Run, Tracker

STATE_NAMES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}


class TrialRunLogger:
    """Log every finished trial as a nested run under its candidate's run."""

    def __init__(self, tracker: Tracker, candidate_run: Run, candidate: str) -> None:
        self.tracker = tracker
        self.parent = candidate_run
        self.candidate = candidate

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        per_fold = trial.user_attrs.get("per_fold", [])
        steps = [
            {k: float(v) for k, v in fold.items() if v is not None and math.isfinite(v)}
            for fold in per_fold
        ]
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
