"""Fold-parallel trial fits: the same bits, pruning decisions and kept folds as one job."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from support import sample_prices

from pipeline.domain import Fold
from pipeline.evaluation.results import Metrics
from pipeline.features.columns import feature_columns
from pipeline.features.spec import build_feature_defs
from pipeline.settings import ModelConfig, StrategyConfig, TuningConfig
from pipeline.training.dataset import TrainingSet, build_training_set
from pipeline.training.ordered import in_order
from pipeline.training.tuning import FoldEvaluation, evaluate_params

# Seconds a test waits for another thread before failing: bounds a hang, never reached.
WAIT = 30.0

PARAMS = {
    "lightgbm": {"n_estimators": 60, "num_leaves": 7, "subsample": 0.8, "subsample_freq": 1,
                 "colsample_bytree": 0.7, "selector__k": 12},
    "ridge": {"alpha": 3.0, "selector__k": 20},
}  # fmt: skip


@pytest.fixture(scope="module")
def setup() -> tuple[ModelConfig, TrainingSet, list[Fold]]:
    model = ModelConfig()
    data = build_training_set(
        sample_prices("NVDA").lazy(), build_feature_defs(model.features), feature_columns(model), 1
    )
    dates = data.dates.to_list()
    folds = [
        Fold(k, dates[0], dates[-1250 + 250 * k - 2], dates[-1250 + 250 * k],
             dates[-1250 + 250 * k + 249], 0, 250)
        for k in range(5)
    ]  # fmt: skip
    return model, data, folds


def run(setup: Any, kind: str, jobs: int, on_fold: Any = None) -> FoldEvaluation:
    model, data, folds = setup
    ev = FoldEvaluation(per_fold=[])
    with contextlib.suppress(RuntimeError):  # the "pruned" trial below
        evaluate_params(
            model, kind, PARAMS[kind], data, folds, 7, StrategyConfig(), on_fold, ev, fold_jobs=jobs
        )
    return ev


@pytest.mark.parametrize("kind", ["lightgbm", "ridge"])
def test_two_jobs_give_the_bits_of_one(setup: Any, kind: str) -> None:
    one, two = run(setup, kind, 1), run(setup, kind, 2)
    assert len(one.per_fold) == 5
    assert [m.model_dump() for m in one.per_fold] == [m.model_dump() for m in two.per_fold]
    for a, b in zip(one.predictions, two.predictions, strict=True):
        assert a.tobytes() == b.tobytes()
    assert one.selected == two.selected


def test_a_pruned_trial_keeps_the_same_folds(setup: Any) -> None:
    def prune_after_third(step: int, per_fold: list[Metrics]) -> None:
        if len(per_fold) == 3:
            raise RuntimeError("pruned")

    one = run(setup, "lightgbm", 1, prune_after_third)
    three = run(setup, "lightgbm", 3, prune_after_third)
    assert len(one.per_fold) == len(three.per_fold) == 3
    assert [m.model_dump() for m in one.per_fold] == [m.model_dump() for m in three.per_fold]


def test_in_order_keeps_order_and_at_most_jobs_running() -> None:
    running, peak, lock = 0, 0, threading.Lock()
    done = [threading.Event() for _ in range(13)]

    def work(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        # Later items finish first: within each window of 3 (0-2, 3-5, ...), item i waits
        # for item i + 1, so all three run at once and finish in reverse order.
        if i % 3 != 2:
            assert done[i + 1].wait(WAIT), f"item {i + 1} never finished"
        with lock:
            running -= 1
        done[i].set()
        return i * i

    assert list(in_order(work, range(12), 3)) == [i * i for i in range(12)]
    assert peak == 3
    assert list(in_order(lambda i: i * i, range(4), 1)) == [0, 1, 4, 9]


def test_stopping_early_waits_for_running_calls_and_starts_no_more() -> None:
    started: list[int] = []
    finished: list[int] = []
    release = threading.Event()

    def work(i: int) -> int:
        started.append(i)
        if i > 0:  # held until the test releases it: still running when close() is called
            assert release.wait(WAIT), "never released"
        finished.append(i)
        return i

    fitted = in_order(work, range(10), 2)
    assert next(fitted) == 0
    closer = threading.Thread(target=fitted.close)
    closer.start()
    closer.join(0.05)
    assert closer.is_alive()  # close() waits for the held call, it does not abandon it
    release.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert sorted(started) == sorted(finished)  # nothing left running after close()
    assert set(started) <= {0, 1, 2}  # the window at close time; nothing started after it


def test_fold_workers_default_to_the_cores_per_trial() -> None:
    assert TuningConfig(fold_jobs=3).fold_workers(5) == 3
    assert TuningConfig(fold_jobs=8).fold_workers(5) == 5
    assert TuningConfig(n_jobs=64).fold_workers(5) == 1
    assert 1 <= TuningConfig().fold_workers(5) <= 5
