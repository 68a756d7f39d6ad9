"""``features.dtype: float32``: every feature rounded once from its Float64 value."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError
from support import ALL_FAMILIES, with_bench

from pipeline.features.engine import add_features
from pipeline.features.spec import FeaturesConfig, build_feature_defs
from pipeline.model.transformer import PolarsFeatures

FLOAT32 = ALL_FAMILIES.model_copy(update={"dtype": "float32"})


@pytest.fixture(scope="module")
def both(panel: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    bars = with_bench(panel).lazy()
    wide = add_features(bars, build_feature_defs(ALL_FAMILIES)).collect()
    narrow = add_features(bars, build_feature_defs(FLOAT32)).collect()
    return wide, narrow


def test_every_feature_is_float32_and_nothing_else_changes(
    both: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    wide, narrow = both
    defs = build_feature_defs(FLOAT32)
    assert all(narrow.schema[d.name] == pl.Float32 for d in defs)
    assert narrow.columns == wide.columns
    assert narrow.drop([d.name for d in defs]).equals(wide.drop([d.name for d in defs]))


def test_per_ticker_features_are_the_float64_values_rounded_once(
    both: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    """Bit for bit: computed in Float64, cast at the end (numpy rounds to nearest as well)."""
    wide, narrow = both
    for d in build_feature_defs(FLOAT32):
        if d.partition != "ticker":
            continue
        expected = wide[d.name].cast(pl.Float64).to_numpy().astype(np.float32)
        got = narrow[d.name].to_numpy()
        assert np.array_equal(expected, got, equal_nan=True), d.name
        assert (narrow[d.name].is_null() == wide[d.name].is_null()).all(), d.name


def test_cross_sectional_features_read_the_rounded_columns(
    both: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    wide, narrow = both
    for d in build_feature_defs(FLOAT32):
        if d.partition == "date":
            a, b = wide[d.name].to_numpy(), narrow[d.name].cast(pl.Float64).to_numpy()
            # a z-score over a few near-equal values amplifies the rounding: 1e-4, not 1e-7
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4, equal_nan=True)


def test_the_transformer_carries_the_dtype_to_predict_time(panel: pl.DataFrame) -> None:
    bars = with_bench(panel).filter(pl.col("ticker") == "NVDA")
    out = PolarsFeatures(spec=FLOAT32.model_dump_json()).fit(bars).transform(bars)
    wide = PolarsFeatures(spec=ALL_FAMILIES.model_dump_json()).fit(bars).transform(bars)
    # the matrix handed to the estimator is float64, holding the float32 values
    assert np.array_equal(out, wide.astype(np.float32).astype(np.float64), equal_nan=True)
    assert not np.array_equal(out, wide, equal_nan=True)


def test_other_dtypes_are_refused() -> None:
    with pytest.raises(ValidationError, match="dtype"):
        FeaturesConfig.model_validate({"dtype": "float16"})
