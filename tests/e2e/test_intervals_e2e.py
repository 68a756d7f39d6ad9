"""Prediction intervals end to end on a real sqlite MLflow store: `train` calibrates and
registers them, `score` and `POST /predict` put nested bounds around each prediction, and the
walk-forward reports measure their coverage.

One small competition (a Ridge, one trial) on the shipped NVDA history with the shipped
adaptive configuration (scale: rolling_std_logret_1_20). The oracle of the scale at the as-of
row is numpy's sample std of NVDA's last 20 daily log returns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from support import make_project, sample_prices, sqlite_uri, wait_until_ready, with_bench

from pipeline import bootstrap
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.domain import LOG_COLUMNS, PREDICTION_COLUMNS, LoadedModel
from pipeline.serving.api import create_app
from pipeline.serving.score import HISTORY_MARGIN, score
from pipeline.serving.sinks import ParquetSink
from pipeline.tracking.mlflow_adapter import MlflowRegistry, MlflowTracker

pytestmark = pytest.mark.slow

MODEL = "StocksPredictionModel"
BOUNDS = ["lower_80", "upper_80", "lower_95", "upper_95"]
RIDGE = {"candidates": [{"name": "ridge", "estimator": "ridge", "params": {"alpha": 10.0}}]}
# Needs pipeline/training/backtest.py to give walk_forward_report the model's intervals (see
# the issue 13 hand-over): drop the marker with that change.


def _invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train once, then score the champion into a parquet file."""
    root = tmp_path_factory.mktemp("intervals")
    conf = make_project(root, candidates=RIDGE)
    summary = root / "summary.json"
    _invoke("train", "--config", str(conf), "--trials", "1", "--summary", str(summary), "--quiet")
    scored = root / "scores.parquet"
    _invoke("score", "--config", str(conf), "--output", str(scored))
    client = mlflow.MlflowClient(tracking_uri=sqlite_uri(root), registry_uri=sqlite_uri(root))
    doc = json.loads(summary.read_text())
    version = client.get_model_version(MODEL, doc["champion"]["version"])
    return {
        "root": root,
        "conf": conf,
        "summary": doc,
        "scores": pl.read_parquet(scored),
        "tag": json.loads(version.tags["intervals"]),
        "client": client,
    }


def _sigma20() -> float:
    closes = sample_prices("NVDA")["close"].to_numpy()
    return float(np.std(np.diff(np.log(closes[-21:])), ddof=1))


def _assert_nested(row: dict[str, Any], tag: dict[str, Any]) -> None:
    p = row["prediction"]
    assert row["lower_95"] < row["lower_80"] < p < row["upper_80"] < row["upper_95"]
    for key, q in tag["quantiles"].items():
        half = q * _sigma20()
        assert row[f"upper_{key}"] - p == pytest.approx(half, rel=1e-9)
        assert p - row[f"lower_{key}"] == pytest.approx(half, rel=1e-9)


def test_the_registered_version_carries_the_reports_calibration(trained: dict[str, Any]) -> None:
    tag, report = trained["tag"], trained["summary"]["backtest"]
    assert tag["method"] == "scaled" and tag["scale_feature"] == "rolling_std_logret_1_20"
    assert tag["quantiles"] == {k: v["q"] for k, v in report["intervals"].items()}
    assert 0 < tag["quantiles"]["80"] < tag["quantiles"]["95"]


def test_train_reports_both_methods(trained: dict[str, Any]) -> None:
    report = trained["summary"]["backtest"]
    assert report["intervals_method"] == "scaled"
    for block in (report["intervals"], report["intervals_split"]):
        assert set(block) == {"80", "95"}
        for key, level in (("80", 0.8), ("95", 0.95)):
            assert block[key]["n"] == 4 * 250  # every fold but the first (no calibration)
            assert abs(block[key]["coverage"] - level) < 0.15
        assert 0 < block["80"]["mean_width"] < block["95"]["mean_width"]
    # the train run's metrics.json (what `backtest` writes) carries the same block
    client, run_id = trained["client"], trained["summary"]["champion"]["parent_run_id"]
    local = client.download_artifacts(run_id, "backtest/metrics.json")
    assert json.loads(Path(local).read_text())["intervals"] == report["intervals"]


def test_score_writes_nested_bounds_but_logs_none(trained: dict[str, Any]) -> None:
    scores = trained["scores"]
    assert scores.columns == [*PREDICTION_COLUMNS, *BOUNDS] and scores.height == 1
    _assert_nested(scores.row(0, named=True), trained["tag"])
    cfg = load_config(trained["conf"])
    logged = bootstrap.store(cfg).log.rows()  # the prediction log's own file
    assert logged.columns == list(LOG_COLUMNS) and logged.height == 1


def _ready(client: TestClient) -> dict[str, Any]:
    wait_until_ready(client, 120)
    return dict(client.get("/model").json())


def _predict(trained: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The served model's description and its /predict answer on score's window."""
    cfg = load_config(trained["conf"])
    app = create_app(bootstrap.model_follower(cfg, cfg.tracking.champion_uri), 1, cfg.serving)
    with TestClient(app) as client:
        model = _ready(client)
        prices = with_bench(sample_prices("NVDA"))  # the shipped features use SPY
        recent = prices.tail(model["warmup_rows"] + 1 + HISTORY_MARGIN)
        bars = [{**r, "date": str(r["date"])} for r in recent.iter_rows(named=True)]
        response = client.post("/predict", json={"bars": bars})
    assert response.status_code == 200, response.text
    (row,) = response.json()
    return model, row


def test_the_model_endpoint_shows_the_calibration(trained: dict[str, Any]) -> None:
    model, row = _predict(trained)
    assert model["intervals"] == trained["tag"]
    assert row["prediction"] == pytest.approx(trained["scores"]["prediction"][0], abs=1e-9)


def test_predict_returns_the_same_bounds_as_score(trained: dict[str, Any]) -> None:
    _, row = _predict(trained)
    offline = trained["scores"].row(0, named=True)
    for column in BOUNDS:
        assert row[column] == pytest.approx(offline[column], abs=1e-9)
    _assert_nested(row, trained["tag"])


def test_backtest_metrics_json_measures_the_models_calibration(trained: dict[str, Any]) -> None:
    out = trained["root"] / "backtest"
    _invoke("backtest", "--config", str(trained["conf"]), "--output-dir", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["intervals_method"] == "scaled"
    report = trained["summary"]["backtest"]
    for name in ("intervals", "intervals_split"):
        for key in ("80", "95"):
            for stat in ("coverage", "mean_width", "winkler", "q"):
                got, want = metrics[name][key][stat], report[name][key][stat]
                assert got == pytest.approx(want, rel=1e-9), (name, key, stat)


def test_a_model_registered_without_calibration_scores_without_bounds(
    trained: dict[str, Any], ridge_model: LoadedModel, tmp_path: Path
) -> None:
    """Versions from before intervals: no bound columns, and no error."""
    cfg = load_config(trained["conf"])
    tracker = MlflowTracker(cfg.tracking_uri, "old", tmp_path / "artifacts")
    registry = MlflowRegistry(cfg.tracking_uri, MODEL)
    example = sample_prices("NVDA").tail(ridge_model.warmup + 5).to_pandas()
    with tracker.start_run("fit") as run:
        uri = run.log_model(ridge_model.predictor, example, {})
        version = registry.register(uri, run.run_id, {"horizon": "1"})
    uri = f"models:/{MODEL}/{version}"
    assert bootstrap.loader(cfg).load(uri).intervals is None
    result = score(cfg, bootstrap.score_ports(cfg), ParquetSink(tmp_path / "old.parquet"), uri)
    assert result.frame.columns == list(PREDICTION_COLUMNS)
