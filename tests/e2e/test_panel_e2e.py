"""A three-ticker panel end to end: one global model, folds over the panel, one score per ticker.

The same panel arrives two ways: a ``{ticker}`` path pattern with ``tickers`` in data.yaml, or
one long parquet file with a ``ticker`` column passed with ``--data``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import mlflow
import polars as pl
import pytest
from click.testing import CliRunner, Result
from support import SAMPLE, make_project, sample_prices, sqlite_uri

from pipeline.cli import main
from pipeline.domain import PREDICTION_COLUMNS
from pipeline.evaluation.intervals import bound_columns

pytestmark = pytest.mark.slow

TICKERS = ("NVDA", "SPY", "QQQ")
N_FOLDS, TEST_SIZE = 2, 120


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module", params=["pattern", "parquet"])
def panel(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Train once and score once per way of supplying the panel."""
    root = tmp_path_factory.mktemp(request.param)
    data: dict[str, Any] = {"path": None}
    extra: list[str] = []
    if request.param == "pattern":
        data |= {"path": str(SAMPLE / "{ticker}.csv"), "tickers": list(TICKERS)}
    else:
        long = root / "panel.parquet"
        sample_prices(*TICKERS).write_parquet(long)
        extra = ["--data", str(long)]
    training = {"folds": {"n_folds": N_FOLDS, "test_size": TEST_SIZE, "min_train_size": 300}}
    conf, uri = make_project(root, data=data, training=training), sqlite_uri(root)
    summary, scores = root / "summary.json", root / "scores.parquet"
    args = ["--config", str(conf), *extra]
    trained = _invoke("train", *args, "--trials", "1", "--quiet", "--summary", str(summary))
    assert trained.exit_code == 0, trained.output
    scored = _invoke("score", *args, "--output", str(scores))
    assert scored.exit_code == 0, scored.output
    return {
        "kind": request.param,
        "uri": uri,
        "summary": json.loads(summary.read_text()),
        "scores": pl.read_parquet(scores),
    }


def test_one_global_model_over_all_tickers(panel: dict[str, Any]) -> None:
    doc = panel["summary"]
    assert sorted(doc["data"]["tickers"]) == sorted(TICKERS)
    assert doc["data"]["rows"] == sum(sample_prices(t).height for t in TICKERS)
    assert doc["lineage"]["tickers"] == ",".join(sorted(TICKERS))
    suffix = "{ticker}.csv" if panel["kind"] == "pattern" else "panel.parquet"
    assert doc["data"]["source"].endswith(suffix)
    snaps = doc["lineage"]["snapshot_ids"].split(",")  # the input is kept, one per ticker
    assert sorted(s.split("/")[1] for s in snaps) == sorted(TICKERS)
    client = mlflow.MlflowClient(tracking_uri=panel["uri"], registry_uri=panel["uri"])
    (version,) = client.search_model_versions("name='StocksPredictionModel'")
    assert str(version.version) == doc["champion"]["version"]
    assert version.tags["tickers"] == ",".join(sorted(TICKERS))


def test_folds_cover_every_ticker_on_the_panel_calendar(panel: dict[str, Any]) -> None:
    folds = panel["summary"]["folds"]
    assert len(folds) == N_FOLDS
    assert [f["test_rows"] for f in folds] == [len(TICKERS) * TEST_SIZE] * N_FOLDS
    assert folds[-1]["test_end"] == "2026-09-24"  # the last day has no 1-day-ahead target
    assert all(f["train_rows"] > len(TICKERS) * 300 for f in folds)


def test_score_writes_one_row_per_ticker(panel: dict[str, Any]) -> None:
    scores, doc = panel["scores"], panel["summary"]
    # a trained model carries its interval calibration (model.yaml intervals): bounds follow
    assert scores.columns == [*PREDICTION_COLUMNS, *bound_columns(["80", "95"])]
    assert scores.schema["as_of_date"] == pl.Date and scores.schema["prediction"] == pl.Float64
    assert sorted(scores["ticker"].to_list()) == sorted(TICKERS)
    for row in scores.iter_rows(named=True):
        assert row["as_of_date"] == sample_prices(row["ticker"])["date"].max()
        assert row["horizon"] == 1 and math.isfinite(row["prediction"])
        assert row["model_name"] == "StocksPredictionModel"
        assert row["model_version"] == doc["champion"]["version"]
