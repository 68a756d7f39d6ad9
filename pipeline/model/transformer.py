"""scikit-learn transformer that computes the declared Polars features from raw price rows.

It is the first step of every registered pipeline, so a model carries its own feature logic:
``predict`` on raw OHLCV rows computes exactly the features that training used. The transformer
has no learned state beyond bookkeeping, because every feature is a fixed causal function of
the rows before it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from pydantic import ValidationError
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from pipeline.domain import PRICE_COLUMNS
from pipeline.errors import ModelError
from pipeline.features.engine import add_features, collect
from pipeline.features.spec import (
    BENCH_CLOSE,
    FeatureDef,
    FeaturesConfig,
    build_feature_defs,
    total_warmup,
)

ROW = "__row__"


def _to_polars(X: Any) -> pl.DataFrame:
    if isinstance(X, pl.LazyFrame):
        return X.collect()
    if isinstance(X, pl.DataFrame):
        return X
    if isinstance(X, pd.DataFrame):
        return pl.from_pandas(X)
    raise ModelError(
        f"PolarsFeatures expects a DataFrame with columns {list(PRICE_COLUMNS)}, "
        f"got {type(X).__name__}"
    )


class PolarsFeatures(TransformerMixin, BaseEstimator):
    """Compute causal per-ticker features from rows of (ticker, date, open, ..., volume).

    Parameters
    ----------
    spec : str
        JSON of a :class:`FeaturesConfig`; a string so that the fitted pipeline serialises
        with skops and round-trips through ``get_params``/``clone``.
    columns : tuple of str or None
        Which feature columns to output, in order; ``None`` outputs every declared feature.

    Output rows are aligned with input rows (input order is preserved). Rows without enough
    history for a feature get NaN there; the imputer downstream handles them.
    """

    def __init__(self, spec: str = "{}", columns: tuple[str, ...] | None = None) -> None:
        self.spec = spec
        self.columns = columns

    def _config(self) -> FeaturesConfig:
        try:
            return FeaturesConfig.model_validate_json(self.spec)
        except ValidationError as exc:
            raise ModelError(f"invalid feature spec: {exc}") from exc

    def _defs(self) -> tuple[list[FeatureDef], list[str]]:
        """Every declared def (outputs may depend on others) and the output column names."""
        defs = build_feature_defs(self._config())
        names = [d.name for d in defs]
        if self.columns is None:
            return defs, names
        unknown = [c for c in self.columns if c not in names]
        if unknown:
            raise ModelError(f"unknown feature column(s) {unknown}; declared: {sorted(names)}")
        return defs, list(self.columns)

    def _inputs(self) -> tuple[str, ...]:
        bench = (BENCH_CLOSE,) if self._config().benchmark is not None else ()
        return (*PRICE_COLUMNS, *bench)

    def _check(self, frame: pl.DataFrame) -> None:
        missing = [c for c in self._inputs() if c not in frame.columns]
        if missing:
            raise ModelError(f"input is missing column(s) {missing}")

    def fit(self, X: Any, y: Any = None) -> PolarsFeatures:
        frame = _to_polars(X)
        self._check(frame)
        defs, names = self._defs()
        by_name = {d.name: d for d in defs}
        self.n_features_in_ = len(frame.columns)
        self.feature_names_out_ = np.array(names, dtype=object)
        self.warmup_ = total_warmup([by_name[n] for n in names])
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        frame = _to_polars(X)
        self._check(frame)
        numeric = [c for c in self._inputs() if c not in ("ticker", "date")]
        frame = (
            frame.select(self._inputs())
            .with_columns(pl.col("date").cast(pl.Date), pl.col(numeric).cast(pl.Float64))
            .with_row_index(ROW)
        )
        defs, names = self._defs()
        out = add_features(frame.lazy(), defs).sort(ROW).select(names)
        return collect(out).to_numpy().astype(np.float64, copy=False)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)
