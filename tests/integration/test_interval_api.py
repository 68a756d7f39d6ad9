"""`POST /predict` and `GET /model` with and without an interval calibration (in memory).

The bounds come from the one prediction function `score` uses, so the API must return exactly
its columns: bounds for a calibrated model, no bound fields at all for one without.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import sample_prices

from pipeline.domain import LoadedModel
from pipeline.evaluation.intervals import IntervalCalibration
from pipeline.serving.api import create_app
from pipeline.serving.predict import latest_predictions

BOUNDS = ("lower_80", "upper_80", "lower_95", "upper_95")
SCALED = IntervalCalibration(
    method="scaled", scale_feature="rolling_std_logret_1_20", quantiles={"80": 1.3, "95": 2.2}
)


def _post(model: LoadedModel) -> tuple[dict[str, Any], dict[str, Any]]:
    """The /predict answer on the last 40 NVDA bars, and the /model description."""
    bars = [
        {**r, "date": str(r["date"])} for r in sample_prices("NVDA").tail(40).iter_rows(named=True)
    ]
    with TestClient(create_app(model)) as client:
        response = client.post("/predict", json={"bars": bars})
        assert response.status_code == 200, response.text
        (row,) = response.json()
        return row, dict(client.get("/model").json())


def test_predict_returns_the_bounds_score_computes(ridge_model: LoadedModel) -> None:
    model = dataclasses.replace(ridge_model, name="M", version="2", intervals=SCALED)
    row, described = _post(model)
    offline = latest_predictions(model, sample_prices("NVDA").tail(40), 1, "M v2").row(
        0, named=True
    )
    for column in ("prediction", *BOUNDS):
        assert row[column] == pytest.approx(offline[column], rel=1e-12), column
    assert row["lower_95"] < row["lower_80"] < row["prediction"] < row["upper_80"]
    assert row["upper_80"] < row["upper_95"]
    assert described["intervals"] == SCALED.model_dump()


def test_a_model_without_calibration_answers_without_bound_fields(
    ridge_model: LoadedModel,
) -> None:
    row, described = _post(ridge_model)
    assert not set(BOUNDS) & set(row)
    assert described["intervals"] is None
