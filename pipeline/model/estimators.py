"""Map a candidate's estimator kind and params to a scikit-learn compatible regressor."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from sklearn.base import RegressorMixin

ESTIMATOR_KINDS = ("lightgbm", "xgboost", "random_forest", "ridge", "elasticnet")
BOOSTED = ("lightgbm", "xgboost")  # the kinds that can stop early (model_candidates.yaml)


def check_params(kind: str, params: Mapping[str, Any], seed: int) -> None:
    """Raise ValueError if ``params`` (fixed plus any sampled) are not valid for ``kind``."""
    est = make_estimator(kind, {}, seed)
    unknown = sorted(set(params) - set(est.get_params()))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for estimator '{kind}'")


def make_estimator(kind: str, params: Mapping[str, Any], seed: int) -> RegressorMixin:
    """Build an unfitted regressor; seeds and thread counts are pinned for repeatability.

    Model parameters come from YAML only (model_candidates.yaml, model.yaml's selection);
    what is set here makes a fit repeatable (seed, one thread, LightGBM's deterministic mode),
    not better or worse.
    """
    p = dict(params)
    if kind == "lightgbm":
        from lightgbm import LGBMRegressor

        p.setdefault("n_jobs", 1)
        p.setdefault("verbose", -1)
        return LGBMRegressor(random_state=seed, deterministic=True, force_row_wise=True, **p)
    if kind == "xgboost":
        from xgboost import XGBRegressor

        p.setdefault("n_jobs", 1)
        return XGBRegressor(random_state=seed, **p)  # tree_method etc.: model_candidates.yaml
    if kind == "random_forest":
        from sklearn.ensemble import RandomForestRegressor

        p.setdefault("n_jobs", 1)
        return RandomForestRegressor(random_state=seed, **p)
    if kind == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(**p)
    if kind == "elasticnet":
        from sklearn.linear_model import ElasticNet

        return ElasticNet(random_state=seed, **p)
    raise ValueError(f"unknown estimator kind {kind!r}; expected one of {ESTIMATOR_KINDS}")


def stopping_fit_params(
    kind: str, model: Any, rounds: int, X_val: Any, y_val: Any
) -> dict[str, Any]:
    """What ``model.fit`` takes to stop after ``rounds`` rounds without a better validation
    loss (the objective's own: l2 / squared error). XGBoost takes the patience as a
    parameter of the model, which this sets."""
    if kind == "lightgbm":
        from lightgbm import early_stopping

        stop = [early_stopping(rounds, first_metric_only=True, verbose=False)]
        # Newer LightGBM takes eval_X / eval_y (eval_set is deprecated); older 4.x only eval_set.
        if "eval_X" in inspect.signature(model.fit).parameters:
            return {"eval_X": (X_val,), "eval_y": (y_val,), "callbacks": stop}
        return {"eval_set": [(X_val, y_val)], "callbacks": stop}
    if kind == "xgboost":
        model.set_params(early_stopping_rounds=rounds)
        return {"eval_set": [(X_val, y_val)], "verbose": False}
    raise ValueError(f"estimator '{kind}' cannot stop early; boosted kinds: {list(BOOSTED)}")


def trees_used(kind: str, model: Any) -> int:
    """Boosting rounds an early-stopped ``model`` predicts with (its best iteration)."""
    if kind == "lightgbm":
        return int(model.best_iteration_)
    return int(model.best_iteration) + 1  # xgboost counts from 0
