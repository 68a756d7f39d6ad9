"""End to end through the CLI on a real MLflow sqlite store, real DuckDB file, real Optuna."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner, Result
from support import SAMPLE, make_project, sqlite_uri, write_yaml

from pipeline.cli import main
from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore

pytestmark = pytest.mark.slow


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("project")
    conf, uri = make_project(root), sqlite_uri(root)
    summary = root / "summary.json"
    result = _invoke("train", "--config", str(conf), "--trials", "2", "--summary", str(summary))
    assert result.exit_code == 0, result.output
    return {"root": root, "conf": conf, "uri": uri, "summary": summary, "output": result.output}


def _client(uri: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_train_summary_schema(project: dict[str, Any]) -> None:
    doc = json.loads(project["summary"].read_text())
    assert {
        "champion",
        "metrics",
        "folds",
        "baselines",
        "candidates",
        "data",
        "tracking_uri",
    } <= set(doc)
    assert {"candidate", "run_id", "registered_model", "version", "model_uri", "promoted"} <= set(
        doc["champion"]
    )
    assert {"rmse", "mae", "directional_accuracy"} <= set(doc["metrics"])
    fold_keys = {
        "fold",
        "train_start",
        "train_end",
        "test_start",
        "test_end",
        "rmse",
        "mae",
        "directional_accuracy",
    }
    assert all(fold_keys <= set(f) for f in doc["folds"]) and len(doc["folds"]) >= 5
    # pooled over every test row, every forecast metric: backtest.baselines.zero_return
    assert {"rmse", "mae", "directional_accuracy"} <= set(doc["baselines"]["zero_return"])
    assert doc["baselines"]["zero_return"] == doc["backtest"]["baselines"]["zero_return"]
    assert all(
        {"name", "best_value", "n_trials", "best_params"} <= set(c) for c in doc["candidates"]
    )
    assert {"rows", "tickers", "first_date", "last_date", "sha256"} <= set(doc["data"])
    assert doc["data"]["last_date"] == "2026-09-25"
    assert doc["tracking_uri"] == project["uri"]
    assert "champion:" in project["output"] and "zero-return" in project["output"]


def test_registry_alias_points_at_new_version(project: dict[str, Any]) -> None:
    client = _client(project["uri"])
    doc = json.loads(project["summary"].read_text())
    mv = client.get_model_version_by_alias("StocksPredictionModel", "champion")
    assert str(mv.version) == doc["champion"]["version"]
    assert mv.run_id == doc["champion"]["run_id"]
    assert mv.tags["data_sha256"] == doc["data"]["sha256"]
    # the version comes from the winning candidate's run, nested in the competition's run
    run = client.get_run(mv.run_id)
    assert run.data.metrics["rmse"] == pytest.approx(doc["metrics"]["rmse"])
    assert run.data.tags["mlflow.parentRunId"] == doc["champion"]["parent_run_id"]
    parent = client.get_run(doc["champion"]["parent_run_id"])
    assert "baseline_zero_return_rmse" in parent.data.metrics
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id, "config")]
    assert "config/resolved_config.yaml" in artifacts
    history = client.get_metric_history(mv.run_id, "fold_rmse")
    assert sorted(m.step for m in history) == list(range(len(doc["folds"])))


def test_score_writes_documented_schema(project: dict[str, Any]) -> None:
    out = project["root"] / "pred.parquet"
    result = _invoke("score", "--config", str(project["conf"]), "--output", str(out))
    assert result.exit_code == 0, result.output
    frame = pl.read_parquet(out)
    assert frame.columns == [
        "ticker",
        "as_of_date",
        "horizon",
        "prediction",
        "model_name",
        "model_version",
        # the shipped model.yaml calibrates conformal intervals at 80% and 95%
        "lower_80",
        "upper_80",
        "lower_95",
        "upper_95",
    ]
    assert frame.schema["as_of_date"] == pl.Date and frame.schema["prediction"] == pl.Float64
    row = frame.row(0, named=True)
    assert frame.height == 1 and row["ticker"] == "NVDA"
    assert str(row["as_of_date"]) == "2026-09-25" and row["horizon"] == 1
    assert row["model_name"] == "StocksPredictionModel"
    doc = json.loads(project["summary"].read_text())
    assert row["model_version"] == doc["champion"]["version"]

    # Scoring from the short warm-up window equals predicting on the whole history: no
    # train/serve skew from loading less data. Recursive smoothers (EWM, Wilder) are the only
    # features that differ, by less than their declared 1e-8 seed weight.
    mlflow.set_tracking_uri(project["uri"])
    model = mlflow.sklearn.load_model("models:/StocksPredictionModel@champion")
    store = DuckDBStore(":memory:")
    store.upsert(FileSource(SAMPLE / "NVDA.csv").load())
    store.upsert(FileSource(SAMPLE / "SPY.csv").load())
    full = store.history(("NVDA",), "SPY").collect()
    expected = model.predict(full.to_pandas())[-1]
    np.testing.assert_allclose(row["prediction"], expected, rtol=1e-7, atol=1e-12)


def test_retrain_moves_alias_and_bad_input_registers_nothing(project: dict[str, Any]) -> None:
    client = _client(project["uri"])
    before = len(client.search_model_versions("name='StocksPredictionModel'"))
    bad = project["root"] / "BAD.csv"
    bad.write_text("date,open,high,low,volume\n2024-01-02,1,2,0.5,10\n")
    result = CliRunner().invoke(
        main, ["train", "--config", str(project["conf"]), "--data", str(bad), "--trials", "1"]
    )
    assert result.exit_code != 0
    assert "BAD.csv" in result.output and "close" in result.output
    assert "Traceback" not in result.output
    assert len(client.search_model_versions("name='StocksPredictionModel'")) == before

    result = _invoke(
        "train",
        "--config",
        str(project["conf"]),
        "--trials",
        "1",
        "--seed",
        "7",
        "--summary",
        str(project["root"] / "s2.json"),
    )
    assert result.exit_code == 0, result.output
    new = json.loads((project["root"] / "s2.json").read_text())["champion"]["version"]
    assert int(new) == before + 1
    mv = client.get_model_version_by_alias("StocksPredictionModel", "champion")
    assert str(mv.version) == new


def test_unknown_config_key_exits_nonzero(project: dict[str, Any], tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(project["conf"], conf)
    write_yaml(conf / "local" / "training.yaml", {"foldz": 3})
    result = CliRunner().invoke(main, ["train", "--config", str(conf)])
    assert result.exit_code == 2
    assert "training.yaml: key 'foldz'" in result.output
