"""Map a candidate's estimator kind and params to a scikit-learn compatible regressor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.base import RegressorMixin

ESTIMATOR_KINDS = ("lightgbm", "xgboost", "random_forest", "ridge", "elasticnet")


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
