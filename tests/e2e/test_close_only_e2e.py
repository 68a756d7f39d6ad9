"""The shipped config on a close-only panel with a close-only benchmark, end to end.

``ticker,date,close`` for the panel (tests/realdata.py: business days, a listing, a delisting)
and ``date,close`` for SPY: train with the shipped candidates (``--trials 2``), backtest, score
and ``POST /predict`` close-only bars. The OHLV families must be left out with one warning and
recorded in the summary and in the registered model; the oracle of the scores is the panel file
itself (which tickers, which last dates), and /predict must agree with `score`.
"""

from __future__ import annotations

import json
import time
from typing import Any

import mlflow
import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from realdata import LAST, business_day_panel, close_only
from support import invoke_ok, make_project, sample_prices, sqlite_uri, with_bench

from pipeline import bootstrap
from pipeline.config import load_config
from pipeline.serving.api import create_app

pytestmark = pytest.mark.slow

LEFT_OUT = {"rolling_zscore", "natr", "stochastic", "obv_ratio", "volume_ratio", "hl_range"}
OHLV_PREFIXES = ("natr_", "stoch_", "obv_", "volume_ratio_", "hl_range", "rolling_zscore_volume")
MARGIN = 5  # bars beyond the warm-up sent to /predict


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train, backtest and score the close-only panel once for the module."""
    root = tmp_path_factory.mktemp("close_only")
    panel = close_only(business_day_panel())
    data, spy = root / "panel.csv", root / "SPY.csv"
    panel.write_csv(data)
    sample_prices("SPY").select("date", "close").write_csv(spy)
    assert spy.read_text().startswith("date,close\n")
    conf = make_project(root, candidates=None, data={"benchmark_path": str(spy)})
    args = ("--config", str(conf), "--data", str(data))
    summary = root / "summary.json"
    trained = invoke_ok("train", *args, "--trials", "2", "--summary", str(summary))
    invoke_ok("backtest", *args, "--output-dir", str(root / "backtest"))
    invoke_ok("score", *args, "--output", str(root / "scores.parquet"))
    return {
        "root": root,
        "conf": conf,
        "panel": panel,
        "summary": json.loads(summary.read_text()),
        "train_output": trained.output,
    }


def test_ohlv_families_are_left_out_with_one_warning(project: dict[str, Any]) -> None:
    out = project["train_output"]
    assert out.count("feature families left out") == 1
    for family in LEFT_OUT:
        assert f"{family} (needs" in out
    features = project["summary"]["features"]
    assert features and not [f for f in features if f.startswith(OHLV_PREFIXES)]
    assert {"rsi_14", "macd_line_12_26", "beta_spy_60"} <= set(features)
    left_out = project["summary"]["features_left_out"]
    assert set(left_out) == LEFT_OUT and left_out["natr"] == ["high", "low"]


def test_registered_model_records_its_families_and_needs_the_close_only(
    project: dict[str, Any],
) -> None:
    mlflow.set_tracking_uri(sqlite_uri(project["root"]))
    model = mlflow.sklearn.load_model("models:/StocksPredictionModel@champion")
    step = model.named_steps["features"]
    assert step.feature_names_in_.tolist() == ["ticker", "date", "close", "bench_close"]
    assert set(step.left_out_) == LEFT_OUT
    version = mlflow.MlflowClient().get_model_version_by_alias("StocksPredictionModel", "champion")
    tagged = dict(item.split(":") for item in version.tags["features_left_out"].split(";"))
    assert set(tagged) == LEFT_OUT and tagged["natr"] == "high+low"
    assert step.get_feature_names_out().tolist() == project["summary"]["features"]


def test_backtest_and_score_run_on_close_only_data(project: dict[str, Any]) -> None:
    metrics = json.loads((project["root"] / "backtest" / "metrics.json").read_text())
    assert metrics["portfolio"] is not None
    scores = pl.read_parquet(project["root"] / "scores.parquet")
    live = (
        project["panel"].group_by("ticker").agg(pl.col("date").max()).filter(pl.col("date") == LAST)
    )
    assert sorted(scores["ticker"]) == sorted(live["ticker"])
    assert np.isfinite(scores["prediction"].to_numpy()).all()


def test_predict_accepts_close_only_bars_and_agrees_with_score(project: dict[str, Any]) -> None:
    cfg = load_config(project["conf"])
    app = create_app(bootstrap.model_follower(cfg, cfg.tracking.champion_uri), 1, cfg.serving)
    ticker = "ALPHA"
    rows = project["panel"].filter(pl.col("ticker") == ticker)
    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, client.get("/ready").text
            time.sleep(0.05)
        warmup = client.get("/model").json()["warmup_rows"]
        recent = with_bench(rows, sample_prices("SPY")).tail(warmup + 1 + MARGIN)
        assert recent.columns == ["ticker", "date", "close", "bench_close"]
        bars = [{**r, "date": str(r["date"])} for r in recent.iter_rows(named=True)]
        response = client.post("/predict", json={"bars": bars})
        no_close = client.post("/predict", json={"bars": [{**b, "close": None} for b in bars]})
    assert response.status_code == 200, response.text
    (row,) = response.json()
    scores = pl.read_parquet(project["root"] / "scores.parquet").filter(pl.col("ticker") == ticker)
    assert row["prediction"] == pytest.approx(scores["prediction"][0], abs=1e-9)
    assert no_close.status_code == 422
