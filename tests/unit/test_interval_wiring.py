"""Prediction intervals wired end to end, in memory: config, calibration tag, score-time bounds.

The model is the session's real fitted pipeline (features -> imputer -> Ridge on the NVDA
sample); the scale feature's oracle is numpy's sample std of the last 20 log returns.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from support import sample_prices, write_yaml

from pipeline.config import load_config
from pipeline.domain import LOG_COLUMNS, PREDICTION_COLUMNS, LoadedModel
from pipeline.errors import ConfigError
from pipeline.evaluation.intervals import TAG, IntervalCalibration, bound_columns
from pipeline.features.columns import feature_columns
from pipeline.serving.predict import as_predictions, latest_predictions, log_rows, predict_bars
from pipeline.settings import IntervalsConfig, ModelConfig, SelectionConfig
from pipeline.training.intervals import model_intervals

SCALE = "rolling_std_logret_1_20"
BOUNDS = ["lower_80", "upper_80", "lower_95", "upper_95"]
SCALED = IntervalCalibration(method="scaled", scale_feature=SCALE, quantiles={"80": 1.3, "95": 2.2})
SPLIT = IntervalCalibration(method="split", quantiles={"80": 0.03, "95": 0.06})


def _with(model: LoadedModel, calibration: IntervalCalibration | None) -> LoadedModel:
    return dataclasses.replace(model, intervals=calibration)


def _std20(closes: np.ndarray) -> float:
    """The oracle of the scale feature on the last row: sample std of the last 20 log returns."""
    return float(np.std(np.diff(np.log(closes[-21:])), ddof=1))


# --------------------------------------------------------------------------- configuration


def test_shipped_config_uses_the_adaptive_method() -> None:
    intervals = load_config(Path(__file__).resolve().parents[2] / "conf").model.intervals
    assert intervals.levels == (0.8, 0.95)
    assert intervals.scale_feature == SCALE and intervals.kind == "scaled"


def test_a_config_without_intervals_loads_as_split_conformal() -> None:
    default = ModelConfig().intervals
    assert default == IntervalsConfig() and default.kind == "split"
    assert default.levels == (0.8, 0.95)
    assert IntervalsConfig(levels=()).levels == ()  # levels: [] turns them off


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ([0.8, 1.0], "strictly between 0 and 1"),
        ([0.0, 0.8], "strictly between 0 and 1"),
        ([0.95, 0.8], "sorted and unique"),
        ([0.8, 0.8], "sorted and unique"),
        ([0.975], "whole percents"),
    ],
)
def test_bad_levels_are_refused(levels: list[float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        IntervalsConfig.model_validate({"levels": levels})


def test_bad_levels_name_the_file_and_key(conf_dir: Path) -> None:
    write_yaml(conf_dir / "local" / "model.yaml", {"intervals": {"levels": [0.95, 0.8]}})
    with pytest.raises(ConfigError, match=r"model\.yaml: key 'intervals\.levels'.*sorted"):
        load_config(conf_dir)


def test_an_unknown_scale_feature_fails_at_plan_time() -> None:
    cfg = ModelConfig(intervals=IntervalsConfig(scale_feature="rolling_std_logret_1_21"))
    with pytest.raises(ConfigError, match=r"model\.intervals\.scale_feature.*not a declared"):
        feature_columns(cfg)


def test_a_scale_feature_the_selection_drops_fails_at_plan_time() -> None:
    cfg = ModelConfig(
        selection=SelectionConfig(exclude=(SCALE,)),
        intervals=IntervalsConfig(scale_feature=SCALE),
    )
    with pytest.raises(ConfigError, match=r"model\.intervals\.scale_feature.*left out"):
        feature_columns(cfg)
    # kept by the feature step, the selector may still drop it from the estimator's inputs
    assert SCALE in feature_columns(ModelConfig(intervals=IntervalsConfig(scale_feature=SCALE)))


# --------------------------------------------------------------------------- the version's tag


def test_calibration_round_trips_through_the_tag() -> None:
    tags = {TAG: SCALED.to_tag(), "horizon": "1"}
    assert IntervalCalibration.from_tags(tags, (SCALE, "rsi_14")) == SCALED
    assert SCALED.levels == (0.8, 0.95) and SCALED.columns == BOUNDS
    assert IntervalCalibration.from_tags({"horizon": "1"}, (SCALE,)) is None  # an old model


def test_too_few_residuals_store_null_not_infinity() -> None:
    cal = IntervalCalibration(method="split", quantiles={"80": 0.1, "95": math.inf})
    assert cal.quantiles == {"80": 0.1, "95": None}
    assert '"95":null' in cal.to_tag()  # strict JSON


@pytest.mark.parametrize(
    "doc",
    [
        '{"method": "scaled", "quantiles": {"80": 1.0}}',  # scaled without its feature
        '{"method": "split", "scale_feature": "x", "quantiles": {"80": 1.0}}',
        '{"method": "split", "quantiles": {"95": 1.0, "80": 0.5}}',  # not ascending
        '{"method": "split", "quantiles": {"80": -1.0}}',
        '{"method": "scaled", "scale_feature": "nope", "quantiles": {"80": 1.0}}',
        "not json",
    ],
)
def test_a_bad_tag_is_refused(doc: str) -> None:
    with pytest.raises(ValueError):  # pydantic's ValidationError is one too
        IntervalCalibration.from_tags({TAG: doc}, (SCALE,))


def test_a_backtest_measures_the_models_own_calibration(ridge_model: LoadedModel) -> None:
    configured = IntervalsConfig(levels=(0.9,), scale_feature="rolling_std_logret_1_60")
    own = model_intervals(_with(ridge_model, SCALED), configured)
    assert own.levels == (0.8, 0.95) and own.scale_feature == SCALE
    # an old model: today's config, split when the model lacks the configured scale feature
    assert model_intervals(ridge_model, configured).scale_feature is None
    today = IntervalsConfig(scale_feature=SCALE)
    assert model_intervals(ridge_model, today) == today


# --------------------------------------------------------------------------- score-time bounds


def test_scaled_bounds_are_nested_and_scale_with_the_feature(ridge_model: LoadedModel) -> None:
    nvda = sample_prices("NVDA")
    out = latest_predictions(_with(ridge_model, SCALED), nvda.tail(300), 1, "m")
    assert out.columns == [*PREDICTION_COLUMNS, *BOUNDS]
    row = out.row(0, named=True)
    p = row["prediction"]
    assert row["lower_95"] < row["lower_80"] < p < row["upper_80"] < row["upper_95"]
    sigma = _std20(nvda["close"].to_numpy())
    for key, q in SCALED.quantiles.items():
        assert q is not None
        assert row[f"upper_{key}"] - p == pytest.approx(q * sigma, rel=1e-9)
        assert p - row[f"lower_{key}"] == pytest.approx(q * sigma, rel=1e-9)


def test_every_replayed_row_gets_its_own_scale(ridge_model: LoadedModel) -> None:
    """Replay keeps many rows of one model call: each row's band uses its own date's scale."""
    nvda = sample_prices("NVDA").tail(120)
    model = _with(ridge_model, SCALED)
    kept = predict_bars(model, nvda, "m").tail(60)
    out = as_predictions(kept, model, 1, "m")
    closes = nvda["close"].to_numpy()
    sigma = np.array([_std20(closes[: len(closes) - 59 + i]) for i in range(60)])
    half = (out["upper_80"] - out["prediction"]).to_numpy()
    np.testing.assert_allclose(half, 1.3 * sigma, rtol=1e-9)


def test_split_bounds_are_the_prediction_plus_minus_q(ridge_model: LoadedModel) -> None:
    out = latest_predictions(_with(ridge_model, SPLIT), sample_prices("NVDA").tail(300), 1, "m")
    row = out.row(0, named=True)
    assert row["upper_80"] - row["prediction"] == pytest.approx(0.03)
    assert row["prediction"] - row["lower_95"] == pytest.approx(0.06)


def test_an_undefined_scale_gives_null_bounds(ridge_model: LoadedModel) -> None:
    """Fewer bars than the scale feature's window: a prediction (imputed) but no band."""
    out = latest_predictions(_with(ridge_model, SCALED), sample_prices("NVDA").tail(12), 1, "m")
    assert math.isfinite(out["prediction"][0])
    assert out.select(BOUNDS).null_count().row(0) == (1, 1, 1, 1)


def test_an_undefined_quantile_gives_null_bounds(ridge_model: LoadedModel) -> None:
    cal = IntervalCalibration(method="split", quantiles={"80": 0.03, "95": None})
    out = latest_predictions(_with(ridge_model, cal), sample_prices("NVDA").tail(300), 1, "m")
    assert out["upper_80"][0] is not None and out["upper_95"][0] is None


def test_a_model_without_calibration_gets_no_interval_columns(ridge_model: LoadedModel) -> None:
    out = latest_predictions(ridge_model, sample_prices("NVDA").tail(300), 1, "m")
    assert out.columns == list(PREDICTION_COLUMNS)


def test_the_prediction_log_keeps_the_bounds_as_json(ridge_model: LoadedModel) -> None:
    model = _with(ridge_model, SCALED)
    out = latest_predictions(model, sample_prices("NVDA").tail(300), 1, "m")
    logged = log_rows(out, model, "score")
    assert logged.columns == [*LOG_COLUMNS, "intervals"]
    assert json.loads(logged["intervals"][0]) == {c: out[c][0] for c in BOUNDS}
    assert log_rows(out, ridge_model, "score")["intervals"][0] is None  # no calibration


def test_bound_columns_follow_the_levels() -> None:
    assert bound_columns(["80", "95"]) == BOUNDS
    assert IntervalCalibration(method="split", quantiles={"90": 0.1}).columns == [
        "lower_90",
        "upper_90",
    ]
