"""The shipped `random_forest` candidate is LightGBM's random forest (boosting_type rf).

It replaced scikit-learn's RandomForestRegressor to bring the default `train` down (issue 15;
benchmarks/README.md, "Default train time"). LightGBM refuses rf without bagging, so every
corner of the search space is fitted here, and a fit must repeat bit for bit with its seed.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from lightgbm import LGBMRegressor
from support import REPO

from pipeline.config import load_config
from pipeline.model.estimators import check_params, make_estimator
from pipeline.settings import CandidateConfig, CategoricalSpace, FloatSpace, IntSpace
from pipeline.training.competition import check_candidates

SELECTOR = "selector__"


@pytest.fixture(scope="module")
def forest() -> CandidateConfig:
    cfg = load_config(REPO / "conf")
    check_candidates(cfg.candidates, cfg.training.seed)
    return next(c for c in cfg.candidates.candidates if c.name == "random_forest")


def _corners(cand: CandidateConfig) -> list[dict[str, object]]:
    """Fixed params with every combination of each searched param's extremes."""
    ends: dict[str, tuple[object, ...]] = {}
    for key, space in cand.space.items():
        if key.startswith(SELECTOR):
            continue
        if isinstance(space, IntSpace | FloatSpace):
            ends[key] = (space.low, space.high)
        elif isinstance(space, CategoricalSpace):
            ends[key] = space.choices
    keys = sorted(ends)
    return [
        {**cand.params, **dict(zip(keys, values, strict=True))}
        for values in itertools.product(*(ends[k] for k in keys))
    ]


def _data(n: int = 2000, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, k))
    y = 0.01 * X[:, 0] - 0.005 * X[:, 1] + rng.normal(scale=0.02, size=n)
    return X, y


def test_the_shipped_random_forest_is_a_lightgbm_rf(forest: CandidateConfig) -> None:
    assert forest.enabled and forest.estimator == "lightgbm"
    est = make_estimator(forest.estimator, forest.params, 42)
    assert isinstance(est, LGBMRegressor)
    params = est.get_params()
    assert params["boosting_type"] == "rf"
    assert params["subsample_freq"] >= 1  # rf needs bagging ...
    space = forest.space["subsample"]
    assert isinstance(space, FloatSpace) and 0 < space.low <= space.high < 1  # ... below 1
    names = [k for k in (*forest.params, *forest.space) if not k.startswith(SELECTOR)]
    check_params(forest.estimator, dict.fromkeys(names), 42)


def test_every_corner_of_the_space_fits(forest: CandidateConfig) -> None:
    X, y = _data()
    corners = _corners(forest)
    assert len(corners) >= 2
    for params in corners:
        pred = make_estimator(forest.estimator, params, 42).fit(X, y).predict(X)
        assert np.isfinite(pred).all() and np.ptp(pred) > 1e-6, params  # it did split


def test_the_same_seed_gives_the_same_forest_bit_for_bit(forest: CandidateConfig) -> None:
    X, y = _data()
    params = _corners(forest)[0]

    def predict(seed: int) -> bytes:
        est = make_estimator(forest.estimator, params, seed).fit(X, y)
        return np.asarray(est.predict(X), dtype=np.float64).tobytes()

    assert predict(42) == predict(42)
    assert predict(42) != predict(7)  # the bagging does follow the seed
