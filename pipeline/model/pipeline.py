"""Assemble the model pipeline: features -> imputer -> scaler -> selector -> estimator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.features.columns import feature_columns
from pipeline.model.estimators import make_estimator
from pipeline.model.selectors import make_selector
from pipeline.model.transformer import PolarsFeatures
from pipeline.settings import ModelConfig

SELECTOR_PARAM_PREFIX = "selector__"


def build_tail(
    cfg: ModelConfig, kind: str, params: Mapping[str, Any], seed: int, n_features: int
) -> list[tuple[str, Any]]:
    """The steps after feature computation. Params prefixed ``selector__`` tune the selector."""
    est_params = {k: v for k, v in params.items() if not k.startswith(SELECTOR_PARAM_PREFIX)}
    sel_params = {
        k[len(SELECTOR_PARAM_PREFIX) :]: v
        for k, v in params.items()
        if k.startswith(SELECTOR_PARAM_PREFIX)
    }
    # keep_empty_features: a column entirely null in a fold's training rows (a market feature
    # on a calendar the benchmark does not share) stays, as a constant, so that the kept-feature
    # bookkeeping still lines up with the feature names.
    imputer = SimpleImputer(strategy=cfg.imputer, keep_empty_features=True)
    steps: list[tuple[str, Any]] = [("impute", imputer)]
    if cfg.scaler == "standard":
        steps.append(("scale", StandardScaler()))
    selector = make_selector(cfg.selection, sel_params, n_features, seed)
    if selector is not None:
        steps.append(("select", selector))
    steps.append(("model", make_estimator(kind, est_params, seed)))
    return steps


def feature_step(cfg: ModelConfig) -> PolarsFeatures:
    """The unfitted first step of every registered pipeline: the configured features."""
    return PolarsFeatures(spec=cfg.features.model_dump_json(), columns=feature_columns(cfg))


def compose_fitted(features: PolarsFeatures, tail: Pipeline) -> Pipeline:
    """Prefix an already-fitted tail with the (stateless) feature step.

    Training computes features once over the whole history and fits the tail on them; the
    result is the same as fitting the full pipeline on raw rows (a test proves it), without
    recomputing features per fold and trial.
    """
    return Pipeline([("features", features), *tail.steps])
