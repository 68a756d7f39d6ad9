"""Which declared features a model uses: ``model.yaml`` ``selection`` resolved to columns.

Kept apart from the scikit-learn pipeline so that commands that only compute features
(``features``, ``score``'s checks) do not import scikit-learn for it.
"""

from __future__ import annotations

from pipeline.errors import ConfigError
from pipeline.features.spec import BAR_INPUTS, build_feature_defs, missing_inputs
from pipeline.settings import AUTO, ModelConfig


def feature_columns(cfg: ModelConfig, available: tuple[str, ...] = BAR_INPUTS) -> tuple[str, ...]:
    """Resolve ``features: __AUTO__`` + ``exclude`` (or an explicit list) to column names.

    ``available`` are the price columns the data has (``spec.available_inputs``): under
    ``__AUTO__`` the features reading others are left out (``spec.left_out_families`` says
    which, for the one warning); an explicit list naming one is refused (ConfigError, exit 2)
    naming the feature and the column the data lacks.
    """
    defs = build_feature_defs(cfg.features)
    lacking = missing_inputs(defs, available)
    declared = [d.name for d in defs]
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
    if sel.features == AUTO:
        chosen = [c for c in declared if c not in lacking]
    else:
        chosen = list(sel.features)
        _refuse_lacking(chosen, lacking)
    columns = tuple(c for c in chosen if c not in set(sel.exclude))
    if not columns:
        raise ConfigError("model.yaml: key 'selection': no features left after 'exclude'")
    _check_scale_feature(cfg.intervals.scale_feature, declared, columns, lacking)
    return columns


def _refuse_lacking(chosen: list[str], lacking: dict[str, list[str]]) -> None:
    """An explicit selection may not name a feature whose price columns the data lacks."""
    named = [f"{c} (needs {', '.join(lacking[c])})" for c in chosen if c in lacking]
    if named:
        raise ConfigError(
            f"model.yaml: key 'selection.features': {'; '.join(named)}: the data has no such "
            "column (close-only input?); remove them from the list, or use __AUTO__, which "
            "leaves them out"
        )


def _check_scale_feature(
    scale: str | None,
    declared: list[str],
    columns: tuple[str, ...],
    lacking: dict[str, list[str]],
) -> None:
    """The adaptive intervals' scale must be a column of the model's feature step: `score`
    reads it there. The selector may still leave it out of the estimator's inputs."""
    if scale is None or scale in columns:
        return
    if scale in lacking:
        where = f"needs column(s) {lacking[scale]}, which the data lacks"
    elif scale in declared:
        where = "is left out by 'selection' (features/exclude): the model would not compute it"
    else:
        where = f"is not a declared feature; declared: {declared}"
    raise ConfigError(
        f"model.yaml: key 'intervals.scale_feature': model.intervals.scale_feature "
        f"{scale!r} {where}. Use one of the model's features (e.g. rolling_std_logret_1_20) "
        "or null for plain split conformal"
    )
