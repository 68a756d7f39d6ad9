"""Issue 26 goal 4: opt-in early stopping for the boosted candidates.

Validation rows are the end of each fold's training window, purged by the horizon, strictly
before the test window; the rounds each fold kept are logged per fold; the registered model is
refitted with the folds' median best round count; off (the default) changes no bit.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import pytest
from fakes import FakeTracker
from pydantic import ValidationError
from support import sample_prices

from pipeline.domain import Fold
from pipeline.features.columns import feature_columns
from pipeline.features.spec import build_feature_defs
from pipeline.settings import CandidateConfig, ModelConfig, StrategyConfig, TuningConfig
from pipeline.training.callbacks import NoProgress
from pipeline.training.competition import Arena, run_competition
from pipeline.training.dataset import TrainingSet, build_training_set
from pipeline.training.foldfit import EarlyStopping, evaluate_params
from pipeline.training.tuning import TuningContext

BOOSTED = {
    "lightgbm": {"n_estimators": 300, "learning_rate": 0.3, "num_leaves": 15, "selector__k": 10},
    "xgboost": {"n_estimators": 300, "learning_rate": 0.3, "max_depth": 4, "selector__k": 10},
}


@pytest.fixture(scope="module")
def setup() -> tuple[TrainingSet, list[Fold]]:
    """The sample panel (three tickers, different calendars) on five folds of 200 days."""
    model = ModelConfig()
    data = build_training_set(
        sample_prices().lazy(), build_feature_defs(model.features), feature_columns(model), 1
    )
    dates = data.dates.unique().sort().to_list()
    folds = [
        Fold(k, dates[0], dates[-1000 + 200 * k - 2], dates[-1000 + 200 * k],
             dates[-1000 + 200 * k + 199], 0, 200)
        for k in range(5)
    ]  # fmt: skip
    return data, folds


@pytest.mark.parametrize(("days", "gap"), [(63, 1), (20, 5)])
def test_validation_rows_end_the_training_window_purged_and_before_the_test(
    setup: Any, days: int, gap: int
) -> None:
    data, folds = setup
    dates = data.dates.to_numpy()
    for fold in folds:
        train, test = data.masks(fold)
        fit, valid = data.holdout(fold, days, gap)
        assert not (fit & valid).any() and not ((fit | valid) & ~train).any()
        calendar = np.unique(dates[train])
        assert np.array_equal(np.unique(dates[valid]), calendar[-days:])  # the window's end
        between = calendar[(calendar > dates[fit].max()) & (calendar < dates[valid].min())]
        assert len(between) == gap  # purged: no fitting label reaches a validation day
        assert dates[valid].max() < dates[test].min()  # never a test day


def test_too_short_a_window_says_which_fold(setup: Any) -> None:
    data, folds = setup
    with pytest.raises(ValueError, match=r"fold 0: \d+ training days .*\(validation_days\)"):
        data.holdout(folds[0], 100_000, 1)


def arena(tracker: FakeTracker) -> Arena:
    with tracker.start_run("train") as parent:
        return Arena(tracker, parent, "es", NoProgress(), {}, trial_artifacts=False)


@pytest.mark.parametrize("kind", sorted(BOOSTED))
def test_rounds_are_logged_per_fold_and_the_refit_uses_their_median(setup: Any, kind: str) -> None:
    data, folds = setup
    cand = CandidateConfig(
        name=kind, estimator=kind, params=BOOSTED[kind], early_stopping_rounds=5, validation_days=60
    )
    ctx = TuningContext(
        ModelConfig(), data, folds, 7, StrategyConfig(), TuningConfig(fold_jobs=1), None
    )
    tracker = FakeTracker()
    entry = run_competition(ctx, [(cand, 2)], arena(tracker)).entries[0]
    trees = entry.evaluation.trees
    assert len(trees) == len(folds) and all(1 <= t < 300 for t in trees)  # it did stop early
    chosen = statistics.median_high(trees)
    model = entry.model.named_steps["model"]
    assert model.get_params()["n_estimators"] == chosen
    assert model.get_params().get("early_stopping_rounds") is None  # refit: every row fits
    child = next(r for r in tracker.runs if r.name == kind)
    assert child.metrics["fold_n_trees"] == [(k, float(t)) for k, t in enumerate(trees)]
    assert child.metrics["n_trees"] == [(None, float(chosen))]
    assert child.params["refit_n_estimators"] == chosen
    for trial in tracker.trials:  # every trial run carries its own rounds per fold
        assert [step for step, _ in trial.metrics["fold_n_trees"]] == list(range(len(folds)))


def test_off_by_default_and_off_is_the_plain_fit(setup: Any) -> None:
    data, folds = setup
    cand = CandidateConfig(name="gbm", estimator="lightgbm", params=BOOSTED["lightgbm"])
    assert EarlyStopping.of(cand, 1) is None
    args = (ModelConfig(), "lightgbm", BOOSTED["lightgbm"], data, folds[:2], 7, StrategyConfig())
    off, stopped = evaluate_params(*args), evaluate_params(*args, stop=EarlyStopping(5, 60, 1))
    assert off.trees == [] and len(stopped.trees) == 2
    pairs = zip(off.predictions, stopped.predictions, strict=True)
    assert all(a.tobytes() != b.tobytes() for a, b in pairs)


@pytest.mark.parametrize(
    ("estimator", "params", "message"),
    [
        ("ridge", {}, "'ridge' is not boosted"),
        ("random_forest", {}, "'random_forest' is not boosted"),
        ("lightgbm", {"boosting_type": "rf"}, "random forest"),
    ],
)
def test_only_boosted_candidates_stop_early(
    estimator: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        CandidateConfig(
            name="c",
            estimator=estimator,
            params=params,
            early_stopping_rounds=10,  # type: ignore[arg-type]
        )
    with pytest.raises(ValidationError):
        CandidateConfig(name="c", estimator="lightgbm", early_stopping_rounds=0)
