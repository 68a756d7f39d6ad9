"""scikit-learn transformer that computes the declared Polars features from raw price rows.

It is the first step of every registered pipeline, so a model carries its own feature logic:
``predict`` on raw OHLCV rows computes exactly the features that training used. The transformer
learns nothing from the rows, because every feature is a fixed causal function of the rows
before it; ``fit`` validates the input and caches the parsed, causality-checked spec.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from pydantic import ValidationError
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from pipeline.domain import PRICE_COLUMNS
from pipeline.errors import FeatureInputError, ModelError
from pipeline.features.engine import add_features, collect
from pipeline.features.spec import (
    BENCH_CLOSE,
    FeatureDef,
    FeaturesConfig,
    available_inputs,
    build_feature_defs,
    left_out_families,
    missing_inputs,
    total_warmup,
)

ROW = "__row__"
_KEYS = ("ticker", "date")


def _to_polars(X: Any) -> pl.DataFrame:
    """An eager Polars frame; features are declared on column names, so a frame is required."""
    if isinstance(X, pl.LazyFrame):
        return X.collect()
    if isinstance(X, pl.DataFrame):
        return X
    if isinstance(X, pd.DataFrame):
        return pl.from_pandas(X)
    raise FeatureInputError(
        f"PolarsFeatures expects a DataFrame with columns {list(PRICE_COLUMNS)}, "
        f"got {type(X).__name__}: arrays and sparse matrices carry no column names"
    )


def _required(cfg: FeaturesConfig) -> tuple[str, ...]:
    """The input columns of a model saved before ``feature_names_in_`` existed: every price
    column (such a model was trained on full bars)."""
    return (*PRICE_COLUMNS, *((BENCH_CLOSE,) if cfg.benchmark is not None else ()))


def _needed(defs: list[FeatureDef], names: list[str]) -> list[FeatureDef]:
    """The defs that computing ``names`` takes: those, and the per-ticker features a
    cross-sectional one reads, in declaration order."""
    wanted = set(names)
    for d in defs:
        if d.name in wanted and d.partition == "date":
            wanted |= set(d.expr.meta.root_names())
    return [d for d in defs if d.name in wanted]


def _inputs_of(defs: list[FeatureDef], available: tuple[str, ...]) -> tuple[str, ...]:
    """The input columns of a model fitted on rows with the price columns ``available``:
    keys, those price columns (full bars: all of them, as before close-only input; close-only
    rows: the close), and ``bench_close`` when one of ``defs`` reads it."""
    market = any(BENCH_CLOSE in d.expr.meta.root_names() for d in defs)
    prices = (c for c in PRICE_COLUMNS[2:] if c in available)
    return (*_KEYS, *prices, *((BENCH_CLOSE,) if market else ()))


def _prepare(X: Any, required: tuple[str, ...]) -> pl.DataFrame:
    """The required columns of ``X`` with the engine's dtypes, or FeatureInputError."""
    frame = _to_polars(X)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise FeatureInputError(f"input is missing column(s) {missing}; needs {list(required)}")
    if frame.height == 0:  # otherwise a silent (0, n) array, which hides an empty query
        raise FeatureInputError("input has 0 rows; PolarsFeatures needs at least one price row")
    # A price column that is null on every row is a column the source lacked (close-only
    # bars): features read from it would all be null and imputed, a silent garbage forecast.
    prices = [c for c in required if c in PRICE_COLUMNS[2:]]
    empty = [c for c in prices if frame.get_column(c).null_count() == frame.height]
    if empty:
        raise FeatureInputError(
            f"input column(s) {empty} are empty (null on every row); the model's features "
            f"read them: needs {list(required)}"
        )
    numeric = [c for c in required if c not in _KEYS]
    try:
        return frame.select(required).with_columns(
            pl.col("date").cast(pl.Date), pl.col(numeric).cast(pl.Float64)
        )
    except pl.exceptions.PolarsError as exc:  # e.g. text in 'close': a bad input, not a bug
        raise FeatureInputError(f"input columns have unusable types: {exc}") from exc


class PolarsFeatures(TransformerMixin, BaseEstimator):
    """Compute causal per-ticker features from rows of (ticker, date, open, ..., volume).

    Parameters
    ----------
    spec : str
        JSON of a :class:`FeaturesConfig`; a string so that the fitted pipeline serialises
        with skops and round-trips through ``get_params``/``clone``.
    columns : tuple of str or None
        Which feature columns to output, in order; ``None`` outputs every declared feature.

    At ``fit``, outputs reading a price column the rows lack (absent, or null on every row:
    close-only data) are left out, and ``left_out_`` names their families; training has
    refused an explicit selection naming one, so only ``__AUTO__`` choices are dropped here.
    If every output would be dropped, fit raises :class:`FeatureInputError`.

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        The input columns the model *needs*: ticker, date, the price columns of the fit rows
        (``PRICE_COLUMNS`` for full bars; the close only, for close-only rows), plus
        ``bench_close`` when a market feature is kept. Unlike array-based transformers this
        is not every column seen
        by ``fit``: the transformer selects columns by name, so at fit and at transform extra
        columns (an unused ``bench_close``, a row id) are ignored and any order is accepted,
        while a missing one raises :class:`FeatureInputError` naming it.
    n_features_in_ : int
        ``len(feature_names_in_)``.
    feature_names_out_ : ndarray of str
        The output columns, in order.
    warmup_ : int
        Rows of history per ticker before every output column is defined.
    left_out_ : dict of str to list of str
        Feature family -> the price columns the fit rows lacked for it (empty with full bars).
    defs_ : list of FeatureDef
        The defs the outputs need (outputs may depend on others), parsed and passed by the
        causality guard once at fit. Polars expressions are not skops-serialisable, so the
        saved state leaves them out and the first ``transform`` after loading rebuilds them
        from ``spec``.

    Output rows are aligned with input rows (input order is preserved). Rows without enough
    history for a feature get NaN there; the imputer downstream handles them. Bad input (not a
    frame, missing columns, 0 rows, non-numeric prices) raises :class:`FeatureInputError`, a
    ``ValueError``.
    """

    def __init__(self, spec: str = "{}", columns: tuple[str, ...] | None = None) -> None:
        self.spec = spec
        self.columns = columns

    def __sklearn_tags__(self) -> Tags:
        """What the common checks and meta-estimators may assume about input and output."""
        tags = super().__sklearn_tags__()
        # sklearn has no "DataFrame only" tag: a frame of bars is 2-D input holding a string
        # column (ticker); arrays are refused at runtime because they carry no column names.
        tags.input_tags.two_d_array = True
        tags.input_tags.string = True
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = True  # a NaN price gives NaN features, imputed downstream
        tags.non_deterministic = False  # bit-identical output for the same rows
        tags.requires_fit = True  # transform needs the checked spec and feature_names_in_
        return tags

    def _config(self) -> FeaturesConfig:
        """The parsed ``spec``; ModelError if it is not a valid FeaturesConfig."""
        try:
            return FeaturesConfig.model_validate_json(self.spec)
        except ValidationError as exc:
            raise ModelError(f"invalid feature spec: {exc}") from exc

    def _outputs(self, defs: list[FeatureDef]) -> list[str]:
        """The output column names: ``columns``, each checked to be declared, or every def."""
        names = [d.name for d in defs]
        if self.columns is None:
            return names
        unknown = [c for c in self.columns if c not in names]
        if unknown:
            raise ModelError(f"unknown feature column(s) {unknown}; declared: {sorted(names)}")
        return list(self.columns)

    def fit(self, X: Any, y: Any = None) -> PolarsFeatures:
        """Parse and guard the spec, keep the outputs ``X``'s columns can feed, check ``X``
        has usable rows, and cache the result."""
        cfg = self._config()
        defs = build_feature_defs(cfg)  # raises LookAheadError if a feature reads the future
        # The close is never optional: without it _prepare names it as missing.
        available = (*available_inputs(_to_polars(X), every_row=False), "close")
        lacking = missing_inputs(defs, available)
        wanted = self._outputs(defs)
        names = [n for n in wanted if n not in lacking]
        if not names:
            needs = sorted({c for n in wanted for c in lacking[n]})
            raise FeatureInputError(f"input lacks column(s) {needs} that every feature reads")
        needed = _needed(defs, names)
        required = _inputs_of(needed, available)
        _prepare(X, required)
        by_name = {d.name: d for d in defs}
        self.feature_names_in_ = np.array(required, dtype=object)
        self.n_features_in_ = len(required)
        self.feature_names_out_ = np.array(names, dtype=object)
        self.warmup_ = total_warmup([by_name[n] for n in names])
        self.left_out_ = left_out_families([by_name[n] for n in wanted], available)
        self.defs_ = needed
        return self

    def _fitted_defs(self) -> list[FeatureDef]:
        """The defs cached at fit, rebuilt once if absent (a loaded model, see __getstate__)."""
        defs: list[FeatureDef] | None = getattr(self, "defs_", None)
        if defs is None:
            cfg = self._config()
            defs = _needed(build_feature_defs(cfg), list(self.feature_names_out_))
            if not hasattr(self, "feature_names_in_"):  # saved before the attribute existed,
                required = _required(cfg)  # when n_features_in_ counted every fit column
                self.feature_names_in_ = np.array(required, dtype=object)
                self.n_features_in_ = len(required)
            self.defs_ = defs  # racing threads would both store the same defs: harmless
        return defs

    def transform(self, X: Any) -> np.ndarray:
        """The feature matrix (float64, one row per input row, in input order)."""
        check_is_fitted(self, "feature_names_out_")
        defs = self._fitted_defs()
        frame = _prepare(X, tuple(self.feature_names_in_)).with_row_index(ROW)
        names = list(self.feature_names_out_)
        out = add_features(frame.lazy(), defs).sort(ROW).select(names)
        return collect(out).to_numpy().astype(np.float64, copy=False)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The output columns; ``input_features``, if given, must hold the needed inputs."""
        check_is_fitted(self, "feature_names_out_")
        if input_features is not None:
            self._fitted_defs()  # restores feature_names_in_ on models saved without it
            missing = [c for c in self.feature_names_in_ if c not in list(input_features)]
            if missing:
                raise FeatureInputError(f"input_features is missing column(s) {missing}")
        return np.asarray(self.feature_names_out_, dtype=object)

    def __getstate__(self) -> dict[str, Any]:
        """The state pickle and skops save: everything but the cached defs."""
        # Keep the saved state plain types: skops refuses Polars expressions, and a pickled
        # expression may not load under another Polars version. _fitted_defs rebuilds it.
        state = dict(super().__getstate__())  # a copy: object's returns __dict__ itself
        state.pop("defs_", None)
        return state
