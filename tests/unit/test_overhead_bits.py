"""Issue 26: the leaner fits give the same bits as the plain ``Pipeline.fit`` they replace.

Fold fits work in place on ``X[train]`` and skip the imputer where no row holds a NaN, the
median is computed column by column, the refit works on one copy of the matrix, the feature
matrix is built column by column, and a candidate keeps its best trial's evaluation instead of
re-running it. Each is checked here against the plain computation, bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from support import sample_prices

from pipeline.domain import Fold
from pipeline.features.columns import feature_columns
from pipeline.features.engine import collect
from pipeline.features.spec import build_feature_defs
from pipeline.model.fitting import fit_imputer, fit_owned
from pipeline.model.pipeline import build_tail
from pipeline.model.selectors import kept_features
from pipeline.settings import ModelConfig, SelectionConfig, StrategyConfig
from pipeline.training.dataset import TrainingSet, build_training_set, feature_frame, feature_matrix
from pipeline.training.foldfit import evaluate_params

SMALL = {"n_estimators": 30, "num_leaves": 7, "subsample": 0.8, "subsample_freq": 1,
         "colsample_bytree": 0.7}  # fmt: skip
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("lightgbm", {**SMALL, "selector__k": 9}, {}),
    ("lightgbm", SMALL, {"imputer": "mean", "scaler": "none"}),
    ("xgboost", {"n_estimators": 20, "max_depth": 3, "subsample": 0.8, "selector__k": 12}, {}),
    ("ridge", {"alpha": 3.0}, {"selection": SelectionConfig(selector="variance")}),
    ("ridge", {"alpha": 0.5}, {"selection": SelectionConfig(selector="none")}),
    ("elasticnet", {"alpha": 1e-4, "l1_ratio": 0.3, "max_iter": 2000}, {}),
    ("random_forest", {"n_estimators": 10, "max_depth": 4}, {}),
    ("lightgbm", SMALL, {"selection": SelectionConfig(selector="from_model")}),
]


@pytest.fixture(scope="module")
def panel_set() -> tuple[TrainingSet, list[Fold]]:
    """The sample panel (rows in ticker, date order) with NaN put in two folds' rows."""
    model = ModelConfig()
    prices = sample_prices().lazy()
    data = build_training_set(prices, build_feature_defs(model.features), feature_columns(model), 1)
    X = data.X.copy(order="K")
    rng = np.random.default_rng(3)
    dates = data.dates.unique().sort().to_list()
    folds = [
        Fold(k, dates[0], dates[-1000 + 200 * k - 2], dates[-1000 + 200 * k],
             dates[-1000 + 200 * k + 199], 0, 0)
        for k in range(5)
    ]  # fmt: skip
    # NaN in fold 2's test rows (one column entirely): folds 0 and 1 skip the imputer, fold 2
    # imputes its test rows, folds 3 and 4 (whose training windows hold those rows) both.
    test2 = np.flatnonzero(data.masks(folds[2])[1])
    X[rng.choice(test2, 300), rng.integers(0, X.shape[1], 300)] = np.nan
    X[test2, 4] = np.nan
    return dataclasses.replace(data, X=X), folds


def plain_fit(
    cfg: ModelConfig, kind: str, params: dict[str, Any], X: np.ndarray, y: np.ndarray
) -> Pipeline:
    return Pipeline(build_tail(cfg, kind, params, 7, X.shape[1])).fit(X, y)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def same_state(a: Any, b: Any) -> None:
    """Every attribute of two fitted steps is equal (arrays bit for bit)."""
    assert vars(a).keys() == vars(b).keys()
    for key, value in vars(a).items():
        other = vars(b)[key]
        if isinstance(value, np.ndarray):
            assert same(value, other), key
        elif key not in ("estimator_", "booster_", "_Booster", "estimators_"):
            assert repr(value) == repr(other), key


@pytest.mark.parametrize(("kind", "params", "cfg"), CASES)
def test_fold_fits_give_the_plain_pipelines_bits(
    panel_set: Any, kind: str, params: dict[str, Any], cfg: dict[str, Any]
) -> None:
    data, folds = panel_set
    model = ModelConfig(**cfg)
    lean = evaluate_params(model, kind, params, data, folds, 7, StrategyConfig())
    imputes = [data.missing_rows[data.masks(f)[0] | data.masks(f)[1]].any() for f in folds]
    assert imputes == [False, False, True, True, True]
    for k, fold in enumerate(folds):
        train, test = data.masks(fold)
        tail = plain_fit(model, kind, params, data.X[train], data.y[train])
        assert same(lean.predictions[k], np.asarray(tail.predict(data.X[test]), dtype=float))
        assert lean.selected[k] == kept_features(tail.named_steps.get("select"), data.columns)


@pytest.mark.parametrize(("kind", "params", "cfg"), CASES[:4])
def test_the_refit_on_every_row_is_the_same_model(
    panel_set: Any, kind: str, params: dict[str, Any], cfg: dict[str, Any]
) -> None:
    data, _ = panel_set
    model = ModelConfig(**cfg)
    plain = plain_fit(model, kind, params, data.X, data.y)
    steps = build_tail(model, kind, params, 7, data.X.shape[1])
    lean, trees = fit_owned(steps, data.X.copy(order="K"), data.y)
    assert trees is None
    assert [n for n, _ in lean.steps] == [n for n, _ in plain.steps]
    for (_, a), (_, b) in zip(lean.steps[:-1], plain.steps[:-1], strict=True):
        same_state(a, b)  # imputer statistics, scaler mean and scale, selector scores
    assert same(lean.predict(data.X), plain.predict(data.X))
    assert lean.get_params()["impute__copy"] is True  # the registered model copies its input


@pytest.mark.parametrize("rows", [1, 2, 7, 10_000, 10_001])
def test_the_column_median_is_the_masked_median(rows: int) -> None:
    rng = np.random.default_rng(rows)
    X = np.round(rng.standard_normal((rows, 6)), 1)  # ties
    X[:, 5] = np.nan  # empty column: kept as 0
    if rows > 2:
        X[rng.integers(0, rows, rows // 3), 2] = np.nan
    for order in ("C", "F"):
        A = np.array(X, order=order)
        plain = SimpleImputer(strategy="median", keep_empty_features=True).fit(A)
        lean = fit_imputer(SimpleImputer(strategy="median", keep_empty_features=True), A)
        same_state(lean, plain)
        assert same(lean.transform(A), plain.transform(A))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_feature_matrix_is_the_frames_bits(dtype: str) -> None:
    model = ModelConfig.model_validate(
        {"features": {**ModelConfig().features.model_dump(), "dtype": dtype}}
    )
    defs, columns = build_feature_defs(model.features), feature_columns(model)
    frame = collect(feature_frame(sample_prices("NVDA").lazy(), defs, 1))
    old = frame.select(columns).to_numpy().astype(np.float64)
    new = feature_matrix(frame.clone(), columns)
    assert same(np.asfortranarray(old), new) and new.flags.f_contiguous
    assert old.flags.f_contiguous  # the layout every fold copy and the refit have seen


def test_out_of_sample_rows_are_unchanged(panel_set: Any) -> None:
    data, folds = panel_set
    preds = [np.arange(int(data.masks(f)[1].sum()), dtype=float) for f in folds]
    oos = data.out_of_sample(folds, preds)
    tests = [data.masks(f)[1] for f in folds]
    assert same(oos.dates, np.concatenate([data.dates.to_numpy()[t] for t in tests]))
    assert list(oos.tickers) == list(np.concatenate([data.tickers.to_numpy()[t] for t in tests]))
    assert isinstance(data.tickers, pl.Series)
