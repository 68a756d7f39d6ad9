"""PolarsFeatures against the scikit-learn estimator contract, and what it saves in a model.

scikit-learn's common checks feed numeric arrays, which this transformer refuses (its input is
a frame of named OHLCV bars), so most of them are expected failures; the tests below check the
same properties on real bars, plus the input contract, the tags, the spec cached at fit and the
skops round trip that MLflow's sklearn flavour performs.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pytest
import skops.io as sio
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks
from support import with_bench

import pipeline.model.transformer as transformer_module
from pipeline.domain import PRICE_COLUMNS
from pipeline.errors import FeatureInputError, ModelError
from pipeline.features.engine import TARGET, add_target
from pipeline.features.spec import BENCH_CLOSE, FeaturesConfig, Market, Returns
from pipeline.model.transformer import PolarsFeatures
from pipeline.tracking.mlflow_adapter import SKOPS_TRUSTED_TYPES

SPEC = FeaturesConfig(simple_return=Returns(windows=(1, 5))).model_dump_json()
MARKET_SPEC = FeaturesConfig(market=Market(windows=(20,))).model_dump_json()
SHORT_SPEC = '{"log_return": {"windows": [5]}}'  # the rest default; keeps test ids short
WITH_BENCH = (*PRICE_COLUMNS, BENCH_CLOSE)

# Why each scikit-learn common check fails. Almost all build X as a numeric ndarray (or sparse
# matrix, memmap, list) and this transformer needs named columns: ticker, date and OHLCV.
NEEDS_BARS = "feeds a numeric array; PolarsFeatures needs a DataFrame of named OHLCV bars"
EXPECTED_FAILED_CHECKS = {
    name: NEEDS_BARS
    for name in (
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_estimators_dtypes",
        "check_dtype_object",
        "check_pipeline_consistency",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
        "check_methods_sample_order_invariance",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_fit2d_predict1d",
    )
} | {
    "check_n_features_in_after_fitting": NEEDS_BARS + "; and n_features_in_ counts the "
    "columns the features need, not every column given (extra columns are ignored)",
    "check_n_features_in": NEEDS_BARS + " (n_features_in_ is the needed columns, see above)",
    "check_positive_only_tag_during_fit": NEEDS_BARS + " (negative values are not the issue)",
    "check_complex_data": "refused as an ndarray before any dtype check; the message names "
    "the DataFrame it needs, not complex numbers",
    "check_estimators_empty_data_messages": "an ndarray with 0 columns is refused as an array "
    "(ValueError), not with sklearn's '0 feature(s)' wording; 0 rows is tested separately",
    "check_fit2d_1sample": NEEDS_BARS + "; one bar is valid input (features are NaN)",
    "check_fit2d_1feature": NEEDS_BARS + "; the error names the DataFrame, not '1 feature(s)'",
    "check_methods_subset_invariance": NEEDS_BARS + "; and by design a row's features depend "
    "on the rows before it, so transforming a subset of rows is not a subset of the output",
}


@pytest.fixture(scope="module")
def bars(nvda: pl.DataFrame) -> pl.DataFrame:
    """NVDA bars with the SPY close as bench_close, as the data layer joins it."""
    return with_bench(nvda)


def bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64).view(np.int64)


def old_fitted(spec: str, frame: pl.DataFrame) -> PolarsFeatures:
    """A fitted transformer with exactly the state the previous version saved in models:
    no feature_names_in_, no cached defs, and n_features_in_ counting every column given."""
    new = PolarsFeatures(spec=spec).fit(frame)
    old = PolarsFeatures(spec=spec)
    old.n_features_in_ = len(frame.columns)
    old.feature_names_out_ = new.feature_names_out_
    old.warmup_ = new.warmup_
    return old


def count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the spec parses (each also runs the causality guard) the transformer performs."""
    calls: list[int] = []
    real = transformer_module.build_feature_defs

    def counting(cfg: FeaturesConfig) -> Any:
        calls.append(1)
        return real(cfg)

    monkeypatch.setattr(transformer_module, "build_feature_defs", counting)
    return calls


# --- scikit-learn's common checks ---------------------------------------------------------


@parametrize_with_checks(
    [PolarsFeatures(), PolarsFeatures(spec=SHORT_SPEC, columns=("hl_range", "logret_5"))],
    expected_failed_checks=lambda _: EXPECTED_FAILED_CHECKS,
    xfail_strict=True,  # a check that starts passing must leave the list above
)
def test_sklearn_common_checks(estimator: PolarsFeatures, check: Callable[..., None]) -> None:
    check(estimator)


# --- the same properties on real bars -----------------------------------------------------


def test_fit_returns_self_sets_only_trailing_underscore_state(nvda: pl.DataFrame) -> None:
    pf = PolarsFeatures(spec=SPEC, columns=("logret_5", "hl_range"))
    params = pf.get_params()
    assert set(vars(pf)) == set(params)
    assert pf.fit(nvda) is pf
    assert pf.get_params() == params  # fit does not touch the parameters
    learned = set(vars(pf)) - set(params)
    assert learned == {
        "feature_names_in_",
        "n_features_in_",
        "feature_names_out_",
        "warmup_",
        "left_out_",
        "defs_",
    }


def test_fit_is_idempotent_and_transform_leaves_state_alone(nvda: pl.DataFrame) -> None:
    pf = PolarsFeatures(spec=SPEC).fit(nvda)
    first = pf.transform(nvda)
    state = dict(vars(pf))
    pf.transform(nvda.tail(100))
    assert vars(pf).keys() == state.keys()
    assert all(vars(pf)[k] is v for k, v in state.items())
    # fit learns nothing from the rows: refitting on others gives the same transform
    assert np.array_equal(bits(pf.fit(nvda.head(50)).transform(nvda)), bits(first))
    assert np.array_equal(bits(pf.fit(nvda).transform(nvda)), bits(first))


@pytest.mark.parametrize(("spec", "needed"), [(SPEC, PRICE_COLUMNS), (MARKET_SPEC, WITH_BENCH)])
def test_feature_names_in_are_the_columns_the_features_need(
    bars: pl.DataFrame, spec: str, needed: tuple[str, ...]
) -> None:
    # extra columns at fit (a row id; bench_close for a spec without a market family) and a
    # different order do not change the input contract
    noisy = bars.with_columns(row=pl.int_range(pl.len())).select(reversed([*bars.columns, "row"]))
    pf = PolarsFeatures(spec=spec).fit(noisy)
    assert pf.feature_names_in_.dtype == object
    assert pf.feature_names_in_.tolist() == list(needed)
    assert pf.n_features_in_ == len(needed)
    model = Pipeline([("features", pf), ("impute", SimpleImputer())])
    assert model.feature_names_in_.tolist() == list(needed)
    assert model.n_features_in_ == len(needed)
    # at transform only the needed columns matter
    assert np.array_equal(bits(pf.transform(bars.select(needed))), bits(pf.transform(noisy)))


def test_missing_needed_column_at_transform_is_named(bars: pl.DataFrame) -> None:
    pf = PolarsFeatures(spec=MARKET_SPEC).fit(bars)
    with pytest.raises(FeatureInputError, match=r"missing column\(s\) \['bench_close'\]"):
        pf.transform(bars.drop(BENCH_CLOSE))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['date', 'bench_close'\]"):
        pf.transform(bars.drop("date", BENCH_CLOSE).to_pandas())
    # a spec without a market family never needs bench_close
    plain = PolarsFeatures(spec=SPEC).fit(bars)
    assert plain.transform(bars.drop(BENCH_CLOSE)).shape == (
        bars.height,
        len(plain.feature_names_out_),
    )


# --- bad input: a ValueError that is also a ModelError ------------------------------------


BAD_INPUTS: dict[str, tuple[Callable[[pl.DataFrame], Any], str]] = {
    "ndarray": (lambda f: f.drop("ticker", "date").to_numpy(), "expects a DataFrame"),
    "list": (lambda f: f.rows(), "expects a DataFrame"),
    "0 rows": (lambda f: f.head(0), "0 rows"),
    "0 rows, pandas": (lambda f: f.head(0).to_pandas(), "0 rows"),
    "0 rows, lazy": (lambda f: f.lazy().head(0), "0 rows"),
    "text prices": (lambda f: f.with_columns(close=pl.lit("n/a")), "unusable"),
    "text dates": (lambda f: f.with_columns(pl.col("date").cast(pl.String)), "unusable"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_raises_a_value_error_at_fit_and_transform(nvda: pl.DataFrame, case: str) -> None:
    make, message = BAD_INPUTS[case]
    bad = make(nvda)
    with pytest.raises(FeatureInputError, match=message) as at_fit:
        PolarsFeatures(spec=SPEC).fit(bad)
    assert isinstance(at_fit.value, ValueError) and isinstance(at_fit.value, ModelError)
    pf = PolarsFeatures(spec=SPEC).fit(nvda)
    with pytest.raises(ValueError, match=message):
        pf.transform(bad)


def test_get_feature_names_out_checks_input_features(bars: pl.DataFrame) -> None:
    pf = PolarsFeatures(spec=MARKET_SPEC).fit(bars)
    names = pf.get_feature_names_out()
    assert pf.get_feature_names_out(pf.feature_names_in_).tolist() == names.tolist()
    assert pf.get_feature_names_out([*bars.columns, "row"]).tolist() == names.tolist()
    with pytest.raises(FeatureInputError, match=r"\['bench_close'\]"):
        pf.get_feature_names_out(PRICE_COLUMNS)


# --- tags -----------------------------------------------------------------------------------


def test_tags_describe_a_frame_of_bars(nvda: pl.DataFrame) -> None:
    tags = get_tags(PolarsFeatures())
    assert tags.input_tags.two_d_array and tags.input_tags.string and tags.input_tags.allow_nan
    assert not tags.input_tags.sparse
    assert not tags.non_deterministic and tags.requires_fit
    assert tags.transformer_tags is not None and tags.transformer_tags.preserves_dtype == [
        "float64"
    ]
    # allow_nan is true: a NaN close gives NaN features instead of an error
    holed = nvda.with_columns(
        close=pl.when(pl.int_range(pl.len()) == 100).then(None).otherwise(pl.col("close"))
    )
    out = PolarsFeatures(spec=SPEC, columns=("ret_1",)).fit(holed).transform(holed)
    assert out.dtype == np.float64 and np.isnan(out[100, 0]) and np.isnan(out[101, 0])


# --- the spec is parsed and guarded once, at fit --------------------------------------------


def test_transform_reuses_the_spec_checked_at_fit(
    nvda: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_builds(monkeypatch)
    pf = PolarsFeatures(spec=SPEC).fit(nvda)
    assert calls == [1]
    reference = pf.transform(nvda)

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("transform re-parsed the spec")

    monkeypatch.setattr(FeaturesConfig, "model_validate_json", refuse)
    monkeypatch.setattr(transformer_module, "build_feature_defs", refuse)
    for _ in range(3):
        assert np.array_equal(bits(pf.transform(nvda)), bits(reference))
    assert pf.get_feature_names_out(PRICE_COLUMNS).tolist() == pf.feature_names_out_.tolist()


def test_pickle_leaves_out_the_cache_and_rebuilds_it_once(
    nvda: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    pf = PolarsFeatures(spec=SPEC).fit(nvda)
    reference = pf.transform(nvda)
    loaded = pickle.loads(pickle.dumps(pf))
    assert "defs_" in vars(pf)  # saving does not strip the live object's cache
    assert "defs_" not in vars(loaded)
    calls = count_builds(monkeypatch)
    for _ in range(3):
        assert np.array_equal(bits(loaded.transform(nvda)), bits(reference))
    assert calls == [1]
    assert [d.name for d in loaded.defs_] == [d.name for d in pf.defs_]


def test_model_saved_by_the_previous_version_loads_and_transforms(bars: pl.DataFrame) -> None:
    fresh = PolarsFeatures(spec=MARKET_SPEC).fit(bars)
    old = pickle.loads(pickle.dumps(old_fitted(MARKET_SPEC, bars.with_columns(row=pl.lit(1)))))
    assert not hasattr(old, "feature_names_in_") and old.n_features_in_ == 9
    assert np.array_equal(bits(old.transform(bars)), bits(fresh.transform(bars)))
    assert old.feature_names_in_.tolist() == list(WITH_BENCH) and old.n_features_in_ == 8
    with pytest.raises(FeatureInputError, match="bench_close"):
        old.transform(bars.drop(BENCH_CLOSE))


# --- skops: the format MLflow's sklearn flavour saves registered models in -----------------


def fitted_pipeline(frame: pl.DataFrame, features: PolarsFeatures) -> Pipeline:
    """features -> imputer -> scaler -> estimator, fitted on raw bars like a registered model."""
    labelled = add_target(frame, 1).filter(pl.col(TARGET).is_not_null())
    model = Pipeline(
        [
            ("features", features),
            ("impute", SimpleImputer()),
            ("scale", StandardScaler()),
            ("model", Ridge()),
        ]
    )
    return model.fit(labelled.drop(TARGET), labelled.get_column(TARGET).to_numpy())


def skops_round_trip(model: Pipeline) -> Pipeline:
    blob = sio.dumps(model)
    untrusted = sio.get_untrusted_types(data=blob)
    assert set(untrusted) <= set(SKOPS_TRUSTED_TYPES), untrusted
    loaded: Pipeline = sio.loads(blob, trusted=SKOPS_TRUSTED_TYPES)
    return loaded


def test_skops_round_trip_predicts_the_same(bars: pl.DataFrame) -> None:
    model = fitted_pipeline(bars, PolarsFeatures(spec=MARKET_SPEC))
    X = bars.to_pandas()  # what MLflow's pyfunc hands the model
    loaded = skops_round_trip(model)
    assert "defs_" not in vars(loaded.named_steps["features"])
    assert np.array_equal(bits(loaded.predict(X)), bits(model.predict(X)))
    assert loaded.named_steps["features"].feature_names_in_.tolist() == list(WITH_BENCH)
    again = skops_round_trip(loaded)  # a loaded model whose cache is rebuilt saves again
    assert np.array_equal(bits(again.predict(X)), bits(model.predict(X)))


def test_skops_model_saved_by_the_previous_version_still_predicts(nvda: pl.DataFrame) -> None:
    model = fitted_pipeline(nvda, PolarsFeatures(spec=SPEC))
    old = Pipeline([("features", old_fitted(SPEC, nvda)), *model.steps[1:]])
    loaded = skops_round_trip(old)
    X = nvda.to_pandas()
    assert np.array_equal(bits(loaded.predict(X)), bits(model.predict(X)))
    assert loaded.named_steps["features"].n_features_in_ == len(PRICE_COLUMNS)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['volume'\]"):
        loaded.predict(X.drop(columns="volume"))


def test_spec_is_parsed_at_fit_not_at_construction_or_pickling() -> None:
    pf = PolarsFeatures(spec="{not json")  # __init__ only stores it, as sklearn requires
    assert pickle.loads(pickle.dumps(pf)).get_params() == pf.get_params()
    with pytest.raises(ModelError, match="invalid feature spec"):
        pf.fit(pl.DataFrame())
