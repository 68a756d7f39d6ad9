"""The evaluation of the best trial this process ran, kept instead of recomputed.

A candidate's result needs its best parameters' out-of-sample predictions, kept features and
(with early stopping) tree counts on every fold. The trial that found those parameters already
computed exactly them, the same bits as a re-run (fits are seeded and single-threaded), so the
candidate keeps that trial's :class:`FoldEvaluation` rather than fitting every fold once more.
Only trials that are the best so far are held (ties too: the study decides which one is best).
A best trial run by another process (a shared study) or in an earlier run (a resumed one) is
not here, and the caller re-evaluates it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from pipeline.training.foldfit import FoldEvaluation

Sink = Callable[[str, int, FoldEvaluation], None]  # tuning.EvaluationSink


class BestEvaluations:
    """An Optuna callback plus an evaluation sink: running trials' evaluations come in through
    :meth:`put` (and go on to ``then``, another sink, if given); when a trial finishes, it is
    kept if it is complete and at least as good as every trial kept so far, and dropped
    otherwise. Thread-safe (``n_jobs`` > 1)."""

    def __init__(self, direction: str, then: Sink | None = None) -> None:
        self._then = then
        self._sign = 1.0 if direction == "minimize" else -1.0
        self._lock = threading.Lock()
        self._running: dict[tuple[str, int], FoldEvaluation] = {}
        self._best: dict[tuple[str, int], FoldEvaluation] = {}
        self._best_value: float | None = None

    def put(self, study: str, number: int, evaluation: FoldEvaluation) -> None:
        """Hold a running trial's evaluation (filled fold by fold)."""
        with self._lock:
            self._running[(study, number)] = evaluation
        if self._then is not None:
            self._then(study, number, evaluation)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        key = (study.study_name, trial.number)
        with self._lock:
            evaluation = self._running.pop(key, None)
            if evaluation is None or trial.state != TrialState.COMPLETE or trial.value is None:
                return
            score = self._sign * trial.value
            if self._best_value is None or score < self._best_value:
                self._best, self._best_value = {}, score
            if score == self._best_value:
                self._best[key] = evaluation

    def get(self, study: str, number: int) -> FoldEvaluation | None:
        """The kept evaluation of trial ``number`` of ``study``, if this process ran it and it
        is (one of) the best."""
        with self._lock:
            return self._best.get((study, number))
