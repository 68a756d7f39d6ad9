"""`stockpipe backtest` end to end: report files, their schema, and agreement with `train`."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
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

pytestmark = pytest.mark.slow

REPORT_FILES = (
    "metrics.json",
    "folds.csv",
    "predictions.parquet",
    "equity_curve.png",
    "predicted_vs_realised.png",
    "report.html",
)
FORECAST_KEYS = ("rmse", "mae", "mape", "r2", "directional_accuracy", "ic", "rank_ic")
STRATEGY_KEYS = (
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "hit_rate",
    "turnover",
    "exposure",
)
REPORT_KEYS = {
    *FORECAST_KEYS,
    *STRATEGY_KEYS,
    "n_trials",
    "trial_sharpe_variance",
    "deflated_sharpe",
    "sharpe_ci",
    "baselines",
    "folds",
}
FOLD_KEYS = ("fold", "train_start", "train_end", "test_start", "test_end", "train_rows")
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _strict(text: str) -> Any:
    def reject(token: str) -> Any:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train once on the sample (2 trials per candidate), then backtest the champion."""
    root = tmp_path_factory.mktemp("backtest")
    conf = make_project(root, candidates=None)  # the shipped candidates, 2 trials each
    summary = root / "summary.json"
    trained = _invoke("train", "--config", str(conf), "--trials", "2", "--summary", str(summary))
    out = root / "report"
    result = _invoke("backtest", "--config", str(conf), "--output-dir", str(out))
    return {
        "root": root,
        "conf": conf,
        "uri": sqlite_uri(root),
        "summary": json.loads(summary.read_text()),
        "out": out,
        "stdout": result.stdout,
        "train_stdout": trained.stdout,
        "metrics": _strict((out / "metrics.json").read_text()),
    }


def _client(uri: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _test_days(folds: list[dict[str, Any]]) -> list[dt.date]:
    """Trading days of NVDA inside the test windows, in order."""
    dates = FileSource(SAMPLE / "NVDA.csv").load().frame["date"].to_list()
    windows = [
        (dt.date.fromisoformat(f["test_start"]), dt.date.fromisoformat(f["test_end"]))
        for f in folds
    ]
    return [d for lo, hi in windows for d in dates if lo <= d <= hi]


def test_backtest_writes_every_report_file(project: dict[str, Any]) -> None:
    out: Path = project["out"]
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    for name in ("equity_curve.png", "predicted_vs_realised.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    folds = pl.read_csv(out / "folds.csv")
    assert folds.columns == [*FOLD_KEYS, "test_rows"]
    assert folds["fold"].to_list() == [f["fold"] for f in project["metrics"]["folds"]]
    assert "models:/StocksPredictionModel@champion" in project["stdout"]
    assert f"files: {out}" in project["stdout"]


def test_metrics_json_is_strict_and_snake_case(project: dict[str, Any]) -> None:
    m = project["metrics"]
    assert set(m) >= REPORT_KEYS
    assert all(SNAKE.match(k) for k in m), sorted(k for k in m if not SNAKE.match(k))
    assert set(m["baselines"]) == {"zero_return", "last_return", "buy_and_hold"}
    assert set(FORECAST_KEYS) <= set(m["baselines"]["zero_return"])
    assert set(FORECAST_KEYS) | set(STRATEGY_KEYS) <= set(m["baselines"]["last_return"])
    assert set(STRATEGY_KEYS) <= set(m["baselines"]["buy_and_hold"])
    for key in ("rmse", "mae", "directional_accuracy", "sharpe", "deflated_sharpe"):
        assert isinstance(m[key], float) and math.isfinite(m[key]), key
    assert isinstance(m["n_trials"], int) and m["n_trials"] >= 1
    assert 0.0 <= m["deflated_sharpe"] <= 1.0
    lo, hi = m["sharpe_ci"]
    assert lo <= hi
    n_folds = len(project["summary"]["folds"])
    assert [f["fold"] for f in m["folds"]] == list(range(n_folds))
    for fold in m["folds"]:
        assert {*FOLD_KEYS, "test_rows", *FORECAST_KEYS, *STRATEGY_KEYS} <= set(fold)
        assert all(SNAKE.match(k) for k in fold)


def test_predictions_cover_exactly_the_test_windows(project: dict[str, Any]) -> None:
    preds = pl.read_parquet(project["out"] / "predictions.parquet")
    assert {"ticker", "date", "prediction", "realised"} <= set(preds.columns)
    assert preds.schema["date"] == pl.Date
    assert preds["ticker"].unique().to_list() == ["NVDA"]
    folds = project["metrics"]["folds"]
    days = _test_days(folds)
    assert preds["date"].to_list() == days
    assert preds.height == sum(f["test_rows"] for f in folds)
    assert preds["prediction"].is_finite().all()
    # `realised` is the forward log return of that day's close
    prices = FileSource(SAMPLE / "NVDA.csv").load().frame.sort("date")
    forward = prices.select("date", (pl.col("close").shift(-1) / pl.col("close")).log().alias("r"))
    joined = preds.join(forward, on="date", how="left")
    np.testing.assert_allclose(joined["realised"].to_numpy(), joined["r"].to_numpy(), atol=1e-12)


def test_metrics_recomputed_by_hand(project: dict[str, Any]) -> None:
    preds = pl.read_parquet(project["out"] / "predictions.parquet")
    p, y = preds["prediction"].to_numpy(), preds["realised"].to_numpy()
    m = project["metrics"]
    assert math.sqrt(float(np.mean((y - p) ** 2))) == pytest.approx(m["rmse"], rel=1e-12)
    assert float(np.mean(np.abs(y - p))) == pytest.approx(m["mae"], rel=1e-12)
    assert float(np.mean((y > 0) == (p > 0))) == pytest.approx(m["directional_accuracy"])
    assert float(np.corrcoef(y, p)[0, 1]) == pytest.approx(m["ic"], abs=1e-10)
    assert math.sqrt(float(np.mean(y**2))) == pytest.approx(
        m["baselines"]["zero_return"]["rmse"], rel=1e-12
    )
    for fold in m["folds"]:
        part = preds.filter(pl.col("fold") == fold["fold"])
        err = part["realised"].to_numpy() - part["prediction"].to_numpy()
        assert math.sqrt(float(np.mean(err**2))) == pytest.approx(fold["rmse"], rel=1e-12)


def test_backtest_reproduces_the_training_walk_forward(project: dict[str, Any]) -> None:
    """Same folds and the champion's own configuration: the same out-of-sample numbers."""
    m, summary = project["metrics"], project["summary"]
    train_report = summary["backtest"]
    assert abs(m["rmse"] - train_report["rmse"]) < 1e-10
    for key in ("mae", "directional_accuracy", "ic"):
        assert abs(m[key] - train_report[key]) < 1e-10, key
    assert m["n_trials"] == sum(c["n_trials"] for c in summary["candidates"])
    assert m["n_trials"] == train_report["n_trials"] == summary["n_trials"]
    assert m["trial_sharpe_variance"] == train_report["trial_sharpe_variance"]
    assert abs(m["deflated_sharpe"] - train_report["deflated_sharpe"]) < 1e-10
    train_folds = [{k: f[k] for k in FOLD_KEYS} for f in summary["folds"]]
    assert [{k: f[k] for k in FOLD_KEYS} for f in m["folds"]] == train_folds


def test_train_and_backtest_give_one_zero_return_answer(project: dict[str, Any]) -> None:
    """Issue 11: `train` and `backtest` report the same pooled baseline, and print it alike."""
    m, summary = project["metrics"], project["summary"]
    zero = summary["baselines"]["zero_return"]
    assert zero == summary["backtest"]["baselines"]["zero_return"]
    assert zero == m["baselines"]["zero_return"]  # the same rows, so the very same numbers
    y = pl.read_parquet(project["out"] / "predictions.parquet")["realised"].to_numpy()
    assert zero["rmse"] == pytest.approx(math.sqrt(float(np.mean(y**2))), rel=1e-12)
    # both commands print the pooled model rmse next to the pooled zero-return rmse
    printed = re.compile(r"rmse (\d\.\d{6}) \(zero-return (\d\.\d{6})\)")
    from_train = printed.search(project["train_stdout"])
    from_backtest = printed.search(project["stdout"])
    assert from_train is not None and from_backtest is not None
    assert from_train.groups() == from_backtest.groups()
    assert from_train.group(2) == f"{zero['rmse']:.6f}"
    assert "pooled over 5 folds" in project["train_stdout"]


def _latest_run(client: mlflow.MlflowClient, name: str) -> Any:
    exp = client.get_experiment_by_name("stockpipe")
    assert exp is not None
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`mlflow.runName` = '{name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    assert runs, f"no MLflow run named {name!r}"
    return runs[0]


def test_report_files_are_logged_to_mlflow(project: dict[str, Any], tmp_path: Path) -> None:
    client = _client(project["uri"])
    run = _latest_run(client, "backtest")
    assert run.info.status == "FINISHED"
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "backtest")}
    assert logged == {f"backtest/{name}" for name in REPORT_FILES}
    local = client.download_artifacts(run.info.run_id, "backtest/metrics.json", str(tmp_path))
    assert _strict(Path(local).read_text()) == project["metrics"]
    assert run.data.metrics["rmse"] == pytest.approx(project["metrics"]["rmse"])
    assert run.data.params["model_uri"] == "models:/StocksPredictionModel@champion"
    assert run.data.params["model_version"] == project["summary"]["champion"]["version"]


def test_train_run_logs_its_own_walk_forward_report(project: dict[str, Any]) -> None:
    client = _client(project["uri"])
    train_run = _latest_run(client, "train")
    logged = {a.path for a in client.list_artifacts(train_run.info.run_id, "backtest")}
    assert "backtest/metrics.json" in logged
    text = client.download_artifacts(train_run.info.run_id, "backtest/metrics.json")
    assert _strict(Path(text).read_text())["rmse"] == pytest.approx(
        project["summary"]["backtest"]["rmse"], abs=1e-12
    )


def test_backtest_purges_by_the_model_horizon(tmp_path: Path) -> None:
    """The registered model's horizon, not today's config, sets the purge of the refit folds.

    Regression: a horizon-5 model backtested under a horizon-1 config (purge 1) was refitted
    on rows whose 5-day labels reached into the test windows.
    """
    horizon = 5
    ridge = {"name": "ridge", "estimator": "ridge", "params": {"alpha": 10.0}}
    training = {"folds": {"n_folds": 3, "purge": horizon}}
    conf = make_project(tmp_path, training=training, candidates={"candidates": [ridge]})
    write_yaml(conf / "local" / "model.yaml", {"target": {"horizon": horizon}})
    _invoke("train", "--config", str(conf), "--trials", "1", "--summary", str(tmp_path / "s.json"))

    # Backtest the registered horizon-5 model with a horizon-1 config (purge 1 is valid there).
    write_yaml(conf / "local" / "model.yaml", {})
    write_yaml(conf / "local" / "training.yaml", {"folds": {"n_folds": 3, "purge": 1}})
    out = tmp_path / "report"
    _invoke("backtest", "--config", str(conf), "--output-dir", str(out))
    dates = FileSource(SAMPLE / "NVDA.csv").load().frame["date"].to_list()
    idx = {d: i for i, d in enumerate(dates)}
    for fold in _strict((out / "metrics.json").read_text())["folds"]:
        train_end = idx[dt.date.fromisoformat(fold["train_end"])]
        test_start = idx[dt.date.fromisoformat(fold["test_start"])]
        # the last training label spans (train_end, train_end + horizon]
        assert train_end + horizon < test_start, fold
