"""Every configurable selector fits inside the pipeline, on training rows only."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_selection import RFECV
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline

from pipeline.model.pipeline import build_tail
from pipeline.model.selectors import kept_features
from pipeline.settings import ModelConfig, SelectionConfig

rng = np.random.default_rng(0)
X = rng.normal(size=(600, 8))
y = 0.5 * X[:, 2] - 0.3 * X[:, 5] + rng.normal(scale=0.5, size=600)
NAMES = tuple(f"f{i}" for i in range(8))


@pytest.mark.parametrize(
    ("selector", "extra"),
    [
        ("none", {}),
        ("variance", {"variance_threshold": 0.5}),
        ("kbest", {"k": 3}),
        ("kbest", {"k": 3, "score_func": "mutual_info_regression"}),
        ("from_model", {"importance_threshold": "median"}),
        ("rfecv", {"rfecv_splits": 3}),
    ],
)
def test_selector_keeps_the_informative_features(selector: str, extra: dict[str, object]) -> None:
    cfg = ModelConfig(selection=SelectionConfig(selector=selector, **extra))  # type: ignore[arg-type]
    tail = Pipeline(build_tail(cfg, "ridge", {}, 0, len(NAMES)))
    tail.fit(X, y)
    kept = kept_features(tail.named_steps.get("select"), NAMES)
    assert {"f2", "f5"} <= set(kept)
    if selector == "kbest":
        assert len(kept) == 3
    if selector == "none":
        assert kept == list(NAMES)
    assert np.isfinite(tail.predict(X[:5])).all()


def test_rfecv_uses_time_ordered_splits() -> None:
    cfg = ModelConfig(selection=SelectionConfig(selector="rfecv"))
    select = dict(build_tail(cfg, "ridge", {}, 0, len(NAMES)))["select"]
    assert isinstance(select, RFECV) and isinstance(select.cv, TimeSeriesSplit)


def test_selector_k_is_tunable_and_clamped() -> None:
    cfg = ModelConfig(selection=SelectionConfig(selector="kbest", k=50))
    steps = dict(build_tail(cfg, "ridge", {"selector__k": 4}, 0, len(NAMES)))
    assert steps["select"].k == 4
    steps = dict(build_tail(cfg, "ridge", {}, 0, len(NAMES)))
    assert steps["select"].k == len(NAMES)  # never more than there are features


@pytest.mark.parametrize("selector", ["none", "variance", "kbest", "from_model", "rfecv"])
@pytest.mark.parametrize("kind", ["ridge", "lightgbm"])
def test_an_empty_or_constant_column_keeps_the_bookkeeping(selector: str, kind: str) -> None:
    # A market feature on a calendar the benchmark does not share is null in every training
    # row of a fold; a stale price makes another constant. Neither may break a trial.
    degenerate = X.copy()
    degenerate[:, 0] = np.nan
    degenerate[:, 1] = 3.0
    cfg = ModelConfig(selection=SelectionConfig(selector=selector))  # type: ignore[arg-type]
    tail = Pipeline(build_tail(cfg, kind, {}, 0, len(NAMES)))
    tail.fit(degenerate, y)
    kept = kept_features(tail.named_steps.get("select"), NAMES)
    assert set(kept) <= set(NAMES) and {"f2", "f5"} <= set(kept)
    assert np.isfinite(tail.predict(degenerate[:5])).all()
