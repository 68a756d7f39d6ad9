"""Which declared features a model uses: ``model.yaml`` ``selection`` resolved to columns.

Kept apart from the scikit-learn pipeline so that commands that only compute features
(``features``, ``score``'s checks) do not import scikit-learn for it.
"""

from __future__ import annotations

from pipeline.errors import ConfigError
from pipeline.features.spec import build_feature_defs
from pipeline.settings import AUTO, ModelConfig


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
