"""Assemble the model pipeline: features -> imputer -> scaler -> selector -> estimator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.errors import ConfigError
from pipeline.features.spec import build_feature_defs
from pipeline.model.estimators import make_estimator
from pipeline.model.selectors import make_selector
from pipeline.model.transformer import PolarsFeatures
from pipeline.settings import AUTO, ModelConfig

SELECTOR_PARAM_PREFIX = "selector__"


def feature_columns(cfg: ModelConfig) -> tuple[str, ...]:
    """Resolve ``features: __AUTO__`` + ``exclude`` (or an explicit list) to column names."""
    declared = [d.name for d in build_feature_defs(cfg.features)]
    sel = cfg.selection
    unknown = [
        c
        for c in (*sel.exclude, *([] if sel.features == AUTO else sel.features))
        if c not in declared
    ]
    if unknown:
        raise ConfigError(
            f"model.yaml: key 'selection': unknown feature(s) {unknown}; declared: {declared}"
        )
    chosen = declared if sel.features == AUTO else list(sel.features)
    columns = tuple(c for c in chosen if c not in set(sel.exclude))
    if not columns:
        raise ConfigError("model.yaml: key 'selection': no features left after 'exclude'")
    _check_scale_feature(cfg.intervals.scale_feature, declared, columns)
    return columns


def _check_scale_feature(scale: str | None, declared: list[str], columns: tuple[str, ...]) -> None:
    """The adaptive intervals' scale must be a column of the model's feature step: `score`
    reads it there. The selector may still leave it out of the estimator's inputs."""
    if scale is None or scale in columns:
        return
    where = (
        "is left out by 'selection' (features/exclude): the model would not compute it"
        if scale in declared
        else f"is not a declared feature; declared: {declared}"
    )
    raise ConfigError(
        f"model.yaml: key 'intervals.scale_feature': model.intervals.scale_feature "
        f"{scale!r} {where}. Use one of the model's features (e.g. rolling_std_logret_1_20) "
        "or null for plain split conformal"
    )


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
    steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy=cfg.imputer))]
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
