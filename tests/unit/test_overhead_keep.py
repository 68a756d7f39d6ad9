"""Issue 26: a candidate keeps its best trial's evaluation instead of fitting every fold again.

The kept evaluation is the same bits as a re-evaluation of the best params; a best trial this
process did not run (a study resumed from storage) is still re-evaluated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import sample_prices

from pipeline.domain import Fold
from pipeline.features.columns import feature_columns
from pipeline.features.spec import build_feature_defs
from pipeline.settings import CandidateConfig, ModelConfig, StrategyConfig, TuningConfig
from pipeline.training import foldfit
from pipeline.training.dataset import TrainingSet, build_training_set
from pipeline.training.foldfit import FoldEvaluation, evaluate_params
from pipeline.training.studies import make_storage
from pipeline.training.tuning import TuningContext, open_study, run_trials, tune_candidate

CANDIDATES = [
    CandidateConfig(
        name="gbm",
        estimator="lightgbm",
        params={"n_estimators": 40, "subsample_freq": 1},
        space={
            "num_leaves": {"type": "int", "low": 4, "high": 31},
            "subsample": {"type": "float", "low": 0.5, "high": 1.0},
            "selector__k": {"type": "int", "low": 5, "high": 30},
        },
    ),
    CandidateConfig(
        name="ridge",
        estimator="ridge",
        space={"alpha": {"type": "float", "low": 0.01, "high": 100.0, "log": True}},
    ),
]


@pytest.fixture(scope="module")
def setup() -> tuple[TrainingSet, list[Fold]]:
    model = ModelConfig()
    data = build_training_set(
        sample_prices("NVDA").lazy(), build_feature_defs(model.features), feature_columns(model), 1
    )
    dates = data.dates.to_list()
    folds = [
        Fold(k, dates[0], dates[-1000 + 200 * k - 2], dates[-1000 + 200 * k],
             dates[-1000 + 200 * k + 199], 0, 200)
        for k in range(5)
    ]  # fmt: skip
    return data, folds


def context(setup: Any, storage: Any = None) -> TuningContext:
    data, folds = setup
    tuning = TuningConfig(fold_jobs=1, pruner="none")
    return TuningContext(ModelConfig(), data, folds, 7, StrategyConfig(), tuning, storage)


def assert_same(a: FoldEvaluation, b: FoldEvaluation) -> None:
    assert [m.model_dump() for m in a.per_fold] == [m.model_dump() for m in b.per_fold]
    assert [p.tobytes() for p in a.predictions] == [p.tobytes() for p in b.predictions]
    assert a.selected == b.selected and a.trees == b.trees


def again(ctx: TuningContext, cand: CandidateConfig, params: dict[str, Any]) -> FoldEvaluation:
    return evaluate_params(
        ctx.model_cfg, cand.estimator, params, ctx.data, ctx.folds, ctx.seed, ctx.strategy
    )


@pytest.mark.parametrize("cand", CANDIDATES, ids=lambda c: c.name)
def test_the_best_trial_is_kept_not_refitted(
    setup: Any, cand: CandidateConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    fits: list[int] = []
    real = foldfit.fit_fold

    def counted(*args: Any) -> Any:
        fits.append(1)
        return real(*args)

    monkeypatch.setattr(foldfit, "fit_fold", counted)
    ctx = context(setup)
    result = tune_candidate(cand, ctx, "keep", 3)
    assert result.n_trials == 3 and result.n_pruned == 0
    assert len(fits) == 3 * len(ctx.folds)  # one fit per trial and fold, none after the study
    assert_same(result.evaluation, again(ctx, cand, result.best_params))
    assert result.evaluation.mean.rmse == result.best_value == result.study.best_value


def test_a_best_trial_run_elsewhere_is_re_evaluated(setup: Any, tmp_path: Path) -> None:
    cand = CANDIDATES[1]
    storage = make_storage(str(tmp_path / "study.journal"), tmp_path)
    ctx = context(setup, storage)
    run_trials(cand, ctx, open_study(cand, ctx, "elsewhere"), 2)  # "another process"
    result = tune_candidate(cand, ctx, "elsewhere", 2)  # budget met: no trial runs here
    assert result.n_trials == 2
    assert_same(result.evaluation, again(ctx, cand, result.best_params))
