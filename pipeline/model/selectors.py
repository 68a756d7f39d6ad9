"""Feature selectors chosen in config; each is fitted inside the pipeline, on training rows only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.feature_selection import (
    RFECV,
    SelectFromModel,
    SelectKBest,
    VarianceThreshold,
    f_regression,
    mutual_info_regression,
)
from sklearn.model_selection import TimeSeriesSplit

from pipeline.errors import ConfigError
from pipeline.model.estimators import check_params, make_estimator
from pipeline.settings import SelectionConfig


def make_selector(
    cfg: SelectionConfig, overrides: Mapping[str, Any], n_features: int, seed: int
) -> Any | None:
    """Build the configured selector; ``overrides`` are tuned ``selector__*`` values."""
    kind = cfg.selector
    if kind == "none":
        return None
    if kind == "variance":
        return VarianceThreshold(
            threshold=float(overrides.get("threshold", cfg.variance_threshold))
        )
    if kind == "kbest":
        k = overrides.get("k", cfg.k)
        score = f_regression if cfg.score_func == "f_regression" else mutual_info_regression
        return SelectKBest(score, k="all" if k == "all" else min(int(k), n_features))
    if kind == "from_model":
        est = make_estimator("lightgbm", cfg.importance_params, seed)
        threshold = overrides.get("threshold", cfg.importance_threshold)
        return SelectFromModel(est, threshold=threshold)
    # rfecv: recursive elimination scored on time-ordered splits, never shuffled ones
    est = make_estimator(cfg.rfecv_estimator, cfg.rfecv_params, seed)
    return RFECV(
        est,
        step=cfg.rfecv_step,
        min_features_to_select=min(cfg.rfecv_min_features, n_features),
        cv=TimeSeriesSplit(n_splits=cfg.rfecv_splits),
        scoring="neg_mean_squared_error",
        importance_getter="auto",
    )


def kept_features(selector: Any | None, names: tuple[str, ...]) -> list[str]:
    """Names the fitted selector kept (all of them when there is no selector)."""
    if selector is None:
        return list(names)
    support = np.asarray(selector.get_support(), dtype=bool)
    return [n for n, keep in zip(names, support, strict=True) if keep]


def check_selection(cfg: SelectionConfig, seed: int) -> None:
    """Refuse, before any data is read, estimator params the selector's model does not take."""
    checks: list[tuple[str, str, Mapping[str, Any]]] = [
        ("importance_params", "lightgbm", cfg.importance_params),
        ("rfecv_params", cfg.rfecv_estimator, cfg.rfecv_params),
    ]
    for key, kind, params in checks:
        try:
            check_params(kind, params, seed)
        except ValueError as exc:
            raise ConfigError(f"model.yaml: key 'selection.{key}': {exc}") from exc
