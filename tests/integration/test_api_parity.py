"""Batch/API parity (issue 12): `score` and `POST /predict` give the same predictions, to
1e-9, from the same registered model on the same bars.

Two versions are registered in a real sqlite MLflow registry: a Ridge on the shipped NVDA
history (no market features), and one on the 3-ticker panel with market (SPY) and
cross-sectional features, so the request's ``bench_close`` and the per-date ranks across
tickers are both exercised. Each is loaded by the real MLflow loader on both sides: the score
use case as `stockpipe score` runs it, and the app as `stockpipe serve` builds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from support import SAMPLE, TICKERS, make_project, sample_prices, wait_until_ready, with_bench

from pipeline import bootstrap
from pipeline.config import load_config
from pipeline.features.engine import add_target, collect
from pipeline.features.spec import CrossSection, FeaturesConfig, Market
from pipeline.model.transformer import PolarsFeatures
from pipeline.serving.api import create_app
from pipeline.serving.score import HISTORY_MARGIN, score
from pipeline.serving.sinks import ParquetSink
from pipeline.tracking.mlflow_adapter import MlflowRegistry, MlflowTracker

pytestmark = pytest.mark.slow  # logs two real models (a few seconds each)

MODEL = "StocksPredictionModel"
PANEL_FEATURES = FeaturesConfig(
    market=Market(benchmark="SPY", windows=(20,)),
    cross_section=CrossSection(of=("logret_5", "beta_spy_20")),
)


def _fit(prices: pl.DataFrame, features: FeaturesConfig) -> Pipeline:
    """features -> imputer -> Ridge, fitted on ``prices`` (the shape of a registered model)."""
    labelled = collect(add_target(prices.lazy(), 1)).drop_nulls("target")
    pipe = Pipeline(
        [
            ("features", PolarsFeatures(features.model_dump_json())),
            ("impute", SimpleImputer()),
            ("model", Ridge()),
        ]
    )
    return pipe.fit(labelled.drop("target").to_pandas(), labelled["target"].to_numpy())


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose registry holds v1 (NVDA, no benchmark) and v2 (panel, SPY)."""
    root = tmp_path_factory.mktemp("parity")
    cfg = load_config(make_project(root, "setup"))
    tracker = MlflowTracker(cfg.tracking_uri, "parity", root / "artifacts")
    reg = MlflowRegistry(cfg.tracking_uri, MODEL)
    nvda = sample_prices("NVDA")
    panel = with_bench(sample_prices())
    models = [
        (_fit(nvda, FeaturesConfig()), nvda, {"horizon": "1"}),
        (_fit(panel, PANEL_FEATURES), panel, {"horizon": "1", "benchmark": "SPY"}),
    ]
    for pipe, prices, tags in models:
        with tracker.start_run("fit") as run:
            uri = run.log_model(pipe, prices.tail(400).to_pandas(), {})
            reg.register(uri, run.run_id, tags)
    return root


def _bars(prices: pl.DataFrame, rows: int) -> list[dict[str, Any]]:
    """The last ``rows`` bars of each ticker as a request sends them (ISO dates)."""
    recent = prices.group_by("ticker", maintain_order=True).tail(rows)
    return [{**r, "date": str(r["date"])} for r in recent.iter_rows(named=True)]


def _served(client: TestClient) -> dict[str, Any]:
    wait_until_ready(client, 120)
    return dict(client.get("/model").json())


@pytest.mark.parametrize(
    ("case", "version"),
    [("nvda", "1"), ("panel", "2")],
)
def test_score_and_predict_agree_to_1e9(registry: Path, case: str, version: str) -> None:
    data = {"warehouse": str(registry / f"{case}.duckdb")}
    if case == "panel":
        data |= {"path": str(SAMPLE / "{ticker}.csv"), "tickers": list(TICKERS)}
    cfg = load_config(make_project(registry, f"conf-{case}", data=data))
    uri = f"models:/{MODEL}/{version}"
    batch = score(cfg, bootstrap.score_ports(cfg), ParquetSink(registry / f"{case}.parquet"), uri)

    app = create_app(
        bootstrap.model_follower(cfg, uri),
        cfg.model.target.horizon,
        cfg.serving,
        bootstrap.contract_policy(cfg),
    )
    with TestClient(app) as client:
        model = _served(client)
        prices = sample_prices(*(TICKERS if case == "panel" else ("NVDA",)))
        if model["benchmark"]:
            prices = with_bench(prices)  # the close of SPY by date, as the warehouse joins it
        # The very window `score` reads: the warm-up, the row predicted, and its margin.
        window = model["warmup_rows"] + 1 + HISTORY_MARGIN
        response = client.post("/predict", json={"bars": _bars(prices, window)})
    assert response.status_code == 200, response.text
    online = pl.DataFrame(response.json()).sort("ticker")
    offline = batch.frame.sort("ticker")
    assert online["ticker"].to_list() == offline["ticker"].to_list()
    assert online.height == (3 if case == "panel" else 1)
    assert [str(d) for d in offline["as_of_date"]] == online["as_of_date"].to_list()
    assert set(online["model_version"]) == set(offline["model_version"]) == {version}
    np.testing.assert_allclose(online["prediction"], offline["prediction"], rtol=0, atol=1e-9)
