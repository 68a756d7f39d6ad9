"""PolarsFeatures: the scikit-learn contract, row alignment and agreement with the engine."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from pipeline.domain import PRICE_COLUMNS
from pipeline.errors import FeatureInputError, ModelError
from pipeline.features.engine import TARGET, add_features, add_target
from pipeline.features.spec import FeaturesConfig, Returns, build_feature_defs
from pipeline.model.transformer import PolarsFeatures

SPEC = FeaturesConfig(simple_return=Returns(windows=(1, 5))).model_dump_json()
NAMES = [d.name for d in build_feature_defs(FeaturesConfig.model_validate_json(SPEC))]


def bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64).view(np.int64)


def engine_matrix(prices: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """The reference: engine features keyed by (ticker, date), nulls as NaN."""
    defs = build_feature_defs(FeaturesConfig.model_validate_json(SPEC))
    out = add_features(prices, defs).select("ticker", "date", *names)
    return out.with_columns(pl.col(names).fill_null(float("nan")))


# --- 7. the scikit-learn contract -----------------------------------------------------------


def test_clone_preserves_params_and_drops_fitted_state(nvda: pl.DataFrame) -> None:
    pf = PolarsFeatures(spec=SPEC, columns=("hl_range", "logret_5")).fit(nvda)
    copy = clone(pf)
    assert copy is not pf
    assert copy.get_params() == {"spec": SPEC, "columns": ("hl_range", "logret_5")}
    assert copy.get_params() == pf.get_params()
    assert not hasattr(copy, "feature_names_out_")
    assert np.array_equal(copy.fit(nvda).transform(nvda), pf.transform(nvda), equal_nan=True)
    assert clone(PolarsFeatures()).get_params() == {"spec": "{}", "columns": None}


@pytest.mark.parametrize(
    "columns", [None, ("hl_range", "logret_5"), ("rolling_zscore_volume_20", "ret_1", "logret_1")]
)
def test_feature_names_out_match_columns_and_output(
    nvda: pl.DataFrame, columns: tuple[str, ...] | None
) -> None:
    pf = PolarsFeatures(spec=SPEC, columns=columns).fit(nvda)
    expected = NAMES if columns is None else list(columns)
    names = pf.get_feature_names_out()
    assert names.dtype == object
    assert names.tolist() == expected
    out = pf.transform(nvda)
    assert out.dtype == np.float64
    assert out.shape == (nvda.height, len(expected))
    ref = engine_matrix(nvda, expected).select(expected).to_numpy()
    assert np.array_equal(bits(out), bits(ref))


def test_transform_before_fit_raises(nvda: pl.DataFrame) -> None:
    with pytest.raises(NotFittedError):
        PolarsFeatures(spec=SPEC).transform(nvda)
    with pytest.raises(NotFittedError):
        PolarsFeatures(spec=SPEC).get_feature_names_out()


@pytest.mark.parametrize("column", ["ticker", "date", "close", "volume"])
def test_missing_input_column_raises_feature_input_error(nvda: pl.DataFrame, column: str) -> None:
    # a ModelError for the CLI, and a ValueError for scikit-learn
    if column == "volume":  # optional (close-only input): fit leaves its features out
        names = PolarsFeatures(spec=SPEC).fit(nvda.drop(column)).get_feature_names_out()
        assert "rolling_zscore_volume_20" in NAMES and "rolling_zscore_volume_20" not in names
    else:
        with pytest.raises(FeatureInputError, match=f"missing column.*'{column}'"):
            PolarsFeatures(spec=SPEC).fit(nvda.drop(column))
    pf = PolarsFeatures(spec=SPEC).fit(nvda)
    with pytest.raises(FeatureInputError, match=f"missing column.*'{column}'"):
        pf.transform(nvda.drop(column))


def test_unknown_feature_column_raises_model_error(nvda: pl.DataFrame) -> None:
    with pytest.raises(ModelError, match=r"unknown feature column\(s\) \['moon_phase'\]"):
        PolarsFeatures(spec=SPEC, columns=("logret_1", "moon_phase")).fit(nvda)


def test_non_frame_input_raises_feature_input_error(nvda: pl.DataFrame) -> None:
    with pytest.raises(FeatureInputError, match="expects a DataFrame"):
        PolarsFeatures(spec=SPEC).fit(nvda.drop("ticker", "date").to_numpy())


# --- inputs: pandas, lazy, single row ---------------------------------------------------------


def test_pandas_and_lazy_inputs_give_the_same_output(nvda: pl.DataFrame) -> None:
    pf = PolarsFeatures(spec=SPEC).fit(nvda)
    ref = pf.transform(nvda)
    assert np.array_equal(bits(pf.transform(nvda.lazy())), bits(ref))
    assert np.array_equal(bits(pf.transform(nvda.to_pandas())), bits(ref))
    # extra columns and a different column order are fine: the transformer selects by name
    noisy = nvda.with_columns(extra=pl.lit(1.0)).select(reversed([*nvda.columns, "extra"]))
    assert np.array_equal(bits(pf.transform(noisy)), bits(ref))


def test_single_row_gives_nan_except_hl_range(nvda: pl.DataFrame) -> None:
    pf = PolarsFeatures(spec=SPEC).fit(nvda)
    out = pf.transform(nvda.head(1))
    assert out.shape == (1, len(NAMES))
    hl = NAMES.index("hl_range")
    row = nvda.row(0, named=True)
    assert out[0, hl] == pytest.approx((row["high"] - row["low"]) / row["close"], rel=1e-12)
    assert np.isnan(np.delete(out[0], hl)).all()


# --- 6. output rows follow input rows -------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_shuffled_input_rows_stay_aligned(panel: pl.DataFrame, seed: int) -> None:
    shuffled = panel.sample(fraction=1.0, shuffle=True, seed=seed)
    assert not shuffled.select("ticker", "date").equals(panel.select("ticker", "date"))
    pf = PolarsFeatures(spec=SPEC).fit(shuffled)
    out = pf.transform(shuffled)
    ref = shuffled.select("ticker", "date").join(
        engine_matrix(panel, NAMES), on=["ticker", "date"], how="left", maintain_order="left"
    )
    assert ref.height == shuffled.height
    assert np.array_equal(bits(out), bits(ref.select(NAMES).to_numpy()))
    # and the same rows in the original order, permuted the same way
    order = shuffled.join(
        panel.with_row_index("pos"), on=["ticker", "date"], how="left", maintain_order="left"
    )["pos"].to_numpy()
    assert np.array_equal(bits(out), bits(pf.transform(panel)[order]))


# --- 7. a full pipeline on raw rows -----------------------------------------------------------


def test_pipeline_fits_and_predicts_on_raw_rows(nvda: pl.DataFrame) -> None:
    labelled = add_target(nvda, 1).filter(pl.col(TARGET).is_not_null())
    X, y = labelled.select(PRICE_COLUMNS), labelled.get_column(TARGET).to_numpy()
    model = Pipeline(
        [
            ("features", PolarsFeatures(spec=SPEC)),
            ("impute", SimpleImputer()),
            ("model", LinearRegression()),
        ]
    )
    pred = model.fit(X, y).predict(X)
    assert pred.shape == (X.height,)
    assert np.isfinite(pred).all()
    assert model.named_steps["model"].coef_.shape == (len(NAMES),)
    assert model[:-1].get_feature_names_out().tolist() == NAMES

    # the same fit done by hand on the engine's features
    manual = SimpleImputer().fit_transform(engine_matrix(X, NAMES).select(NAMES).to_numpy())
    ref = LinearRegression().fit(manual, y).predict(manual)
    np.testing.assert_allclose(pred, ref, rtol=1e-9, atol=1e-12)

    # scoring on a short window of raw rows: past the warm-up, the same predictions
    window = X.tail(60)
    np.testing.assert_allclose(model.predict(window)[20:], pred[-40:], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(clone(model).fit(X, y).predict(X), pred, rtol=1e-12, atol=1e-15)
