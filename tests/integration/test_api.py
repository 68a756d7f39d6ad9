"""The optional FastAPI service predicts exactly what the pipeline predicts, from raw bars."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline

from pipeline.domain import LoadedModel
from pipeline.serving.api import create_app


@pytest.fixture(scope="module")
def client_and_model(
    ridge_model: LoadedModel, nvda: pl.DataFrame
) -> tuple[TestClient, Pipeline, pl.DataFrame]:
    loaded = dataclasses.replace(ridge_model, name="StocksPredictionModel", version="3")
    return TestClient(create_app(loaded)), ridge_model.predictor, nvda


def test_health(client_and_model: tuple[TestClient, Pipeline, pl.DataFrame]) -> None:
    client, _, _ = client_and_model
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["version"] == "3" and body["warmup_rows"] == 20


def test_predict_matches_the_pipeline(
    client_and_model: tuple[TestClient, Pipeline, pl.DataFrame],
) -> None:
    client, model, frame = client_and_model
    recent = frame.tail(40)
    bars = [{**r, "date": str(r["date"])} for r in recent.iter_rows(named=True)]
    response = client.post("/predict", json={"bars": bars[::-1]})  # order must not matter
    assert response.status_code == 200, response.text
    (pred,) = response.json()
    assert pred["ticker"] == "NVDA" and pred["as_of_date"] == "2026-09-25"
    expected = model.predict(frame.to_pandas())[-1]
    np.testing.assert_allclose(pred["prediction"], expected, rtol=1e-12)
    assert pred["model_version"] == "3" and pred["horizon"] == 1


def test_short_history_and_bad_bars_are_rejected(
    client_and_model: tuple[TestClient, Pipeline, pl.DataFrame],
) -> None:
    client, _, frame = client_and_model
    few = [{**r, "date": str(r["date"])} for r in frame.tail(5).iter_rows(named=True)]
    response = client.post("/predict", json={"bars": few})
    assert response.status_code == 422 and "at least 21 bars" in response.text
    bad = [{**few[0], "close": -1.0}]
    assert client.post("/predict", json={"bars": bad}).status_code == 422
