"""A model registered before today's changes still loads and scores identically (issue 23).

tests/fixtures/legacy_model_34417ba/ holds an MLflow sklearn-flavor model directory written by
the registration of commit 34417ba (before the stage-based feature engine, the close-only
transformer with ``left_out_`` and the prediction log's own store), the raw bars it was fed
and the predictions that code made (its README says how). Here the *current* code loads that
directory three ways (mlflow.sklearn, the project's loader on the local path, and a registered
version in a fresh registry, the way `score` and /predict reach it) and must reproduce the
recorded predictions and interval bounds bit for bit: same model file, same bars, same library
versions, and the engine change promised bit-identical features, so any difference at all
means the feature math or the model state handling changed, not rounding.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_model_34417ba"
MODEL_DIR = FIXTURE / "model"
EXPECTED: dict[str, Any] = json.loads((FIXTURE / "expected.json").read_text())
N_LAST = len(EXPECTED["dates"])


def _hex(values: Any) -> list[str]:
    return [float(v).hex() for v in np.asarray(values, dtype=np.float64).ravel()]


def _assert_bit_equal(got: Any, want_hex: list[str], what: str) -> None:
    want = np.array([float.fromhex(h) for h in want_hex])
    got = np.asarray(got, dtype=np.float64).ravel()
    diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
    assert _hex(got) == want_hex, f"{what}: {got.tolist()} != {want.tolist()} (max |diff| {diff})"


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    """The raw bars the legacy code was fed (NVDA sample + SPY's close), unchanged."""
    path = FIXTURE / "input.parquet"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == EXPECTED["input_sha256"]
    frame = pl.read_parquet(path)
    assert [str(d) for d in frame["date"].tail(N_LAST)] == EXPECTED["dates"]
    return frame


def test_fixture_is_a_pre_change_model() -> None:
    """What makes the fixture worth keeping: written by 34417ba's registration (skops, its
    trusted types) and without the attributes fit sets today (``left_out_``)."""
    import yaml

    mlmodel = yaml.safe_load((MODEL_DIR / "MLmodel").read_text())
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "skops"
    assert (
        "pipeline.model.transformer.PolarsFeatures"
        in (mlmodel["flavors"]["sklearn"]["skops_trusted_types"])
    )
    assert EXPECTED["commit"].startswith("34417ba")
    import mlflow.sklearn

    features = mlflow.sklearn.load_model(str(MODEL_DIR)).named_steps["features"]
    assert not hasattr(features, "left_out_")


def test_sklearn_flavor_predicts_the_recorded_values(bars: pl.DataFrame) -> None:
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(str(MODEL_DIR))
    assert list(model.named_steps) == EXPECTED["steps"]
    features = model.named_steps["features"]
    assert [str(c) for c in features.get_feature_names_out()] == EXPECTED["feature_columns"]
    assert features.warmup_ == EXPECTED["warmup"]
    preds = model.predict(bars.to_pandas())
    assert preds.shape == (bars.height,)
    _assert_bit_equal(preds[-N_LAST:], EXPECTED["predictions_hex"], "mlflow.sklearn")


def test_pyfunc_predicts_the_recorded_values(bars: pl.DataFrame) -> None:
    """pyfunc enforces the signature logged in 2026-12 (ticker, date, OHLCV, bench_close)."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(MODEL_DIR), suppress_warnings=True)
    preds = np.asarray(model.predict(bars.to_pandas()))
    _assert_bit_equal(preds[-N_LAST:], EXPECTED["predictions_hex"], "mlflow.pyfunc")


@pytest.mark.slow  # the project's MLflow loader on the fixture (seconds)
def test_project_loader_takes_the_local_path(tmp_path: Path, bars: pl.DataFrame) -> None:
    from pipeline.serving.predict import predict_bars
    from pipeline.tracking.loader import MlflowModelLoader

    loaded = MlflowModelLoader(f"sqlite:///{tmp_path / 'mlflow.db'}").load(str(MODEL_DIR))
    assert loaded.warmup == EXPECTED["warmup"]  # no tags: from the feature step
    assert list(loaded.feature_names) == EXPECTED["feature_columns"]
    predicted = predict_bars(loaded, bars, str(MODEL_DIR)).tail(N_LAST)
    _assert_bit_equal(predicted["prediction"], EXPECTED["predictions_hex"], "loader, local path")


@pytest.mark.slow  # a real sqlite registry (a few seconds)
def test_registered_version_scores_identically(tmp_path: Path, bars: pl.DataFrame) -> None:
    """Registered with its original tags (warmup, horizon, benchmark, interval calibration),
    the legacy model loads by ``models:/Name/1`` and `score`/`predict`'s shared code gives the
    recorded rows: the same predictions and interval bounds, bit for bit."""
    import mlflow

    from pipeline.serving.predict import as_predictions, predict_bars
    from pipeline.tracking.loader import MlflowModelLoader

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tags = EXPECTED["registry_tags"]
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("StocksPredictionModel")
    client.create_model_version("StocksPredictionModel", source=str(MODEL_DIR), tags=tags)

    loaded = MlflowModelLoader(uri).load("models:/StocksPredictionModel/1")
    assert (loaded.name, loaded.version) == ("StocksPredictionModel", "1")
    assert (loaded.warmup, loaded.horizon) == (int(tags["warmup_rows"]), int(tags["horizon"]))
    assert loaded.benchmark == tags["benchmark"]
    assert loaded.intervals is not None

    model_uri = "models:/StocksPredictionModel/1"
    out = as_predictions(
        predict_bars(loaded, bars, model_uri).tail(N_LAST), loaded, loaded.horizon, model_uri
    )
    served = EXPECTED["served"]
    assert out.columns == served["columns"]
    got = [{**row, "as_of_date": str(row["as_of_date"])} for row in out.iter_rows(named=True)]
    keys = [(r["ticker"], r["as_of_date"], r["horizon"], r["model_name"]) for r in got]
    want = [(r["ticker"], r["as_of_date"], r["horizon"], r["model_name"]) for r in served["rows"]]
    assert keys == want
    for column, want_hex in served["hex"].items():
        _assert_bit_equal(out[column], want_hex, f"served {column}")
