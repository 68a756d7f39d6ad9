"""Several horizons through the CLI: train, score, replay, backtest and monitor each handle
every configured horizon without extra flags (real MLflow store, real DuckDB)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import mlflow
import polars as pl
import pytest
from click.testing import CliRunner
from support import SAMPLE, invoke_ok, make_project, sqlite_uri, write_yaml

from pipeline.cli import main
from pipeline.data.readers import FileSource

pytestmark = pytest.mark.slow

HORIZONS = (1, 5, 20)
NAMES = {1: "StocksPredictionModel", 5: "StocksPredictionModel_h5", 20: "StocksPredictionModel_h20"}
RIDGE = {"candidates": [{"name": "ridge", "estimator": "ridge", "params": {"alpha": 10.0}}]}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("horizons")
    conf = make_project(root, training={"folds": {"n_folds": 3}}, candidates=RIDGE)
    write_yaml(conf / "local" / "model.yaml", {"target": {"horizons": list(HORIZONS)}})
    summary = root / "summary.json"
    out = invoke_ok("train", "--config", str(conf), "--trials", "1", "--summary", str(summary))
    return {
        "root": root,
        "conf": conf,
        "uri": sqlite_uri(root),
        "summary": json.loads(summary.read_text()),
        "output": out.output,
    }


def test_train_registers_one_model_per_horizon(project: dict[str, Any]) -> None:
    summary = project["summary"]
    assert summary["horizon"] == 1  # the top level is the primary horizon's
    assert sorted(map(int, summary["by_horizon"])) == list(HORIZONS)
    client = mlflow.MlflowClient(tracking_uri=project["uri"], registry_uri=project["uri"])
    for h in HORIZONS:
        each = summary["by_horizon"][str(h)]
        assert each["horizon"] == h
        assert each["champion"]["registered_model"] == NAMES[h]
        version = client.get_model_version_by_alias(NAMES[h], "champion")
        assert version.tags["horizon"] == str(h)
        assert f"== horizon {h}: {NAMES[h]}" in project["output"]


def test_each_horizon_is_a_child_of_one_train_run(project: dict[str, Any]) -> None:
    client = mlflow.MlflowClient(tracking_uri=project["uri"])
    exp = client.get_experiment_by_name("stockpipe")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`mlflow.runName` = 'train'")
    assert len(runs) == 1
    parent = runs[0]
    assert parent.data.params["horizons"] == "1,5,20"
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    by_name = {c.info.run_name: c for c in children}
    assert set(by_name) == {f"horizon_{h}" for h in HORIZONS}
    for h in HORIZONS:
        assert by_name[f"horizon_{h}"].data.params["horizon"] == str(h)


def test_folds_purge_each_horizon(project: dict[str, Any]) -> None:
    dates = FileSource(SAMPLE / "NVDA.csv").load().frame["date"].to_list()
    index = {d: i for i, d in enumerate(dates)}
    for h in HORIZONS:
        for fold in project["summary"]["by_horizon"][str(h)]["folds"]:
            train_end = index[dt.date.fromisoformat(fold["train_end"])]
            test_start = index[dt.date.fromisoformat(fold["test_start"])]
            assert train_end + h < test_start, (h, fold)


def test_score_and_replay_write_one_row_per_horizon(project: dict[str, Any]) -> None:
    conf, root = str(project["conf"]), project["root"]
    invoke_ok("score", "--config", conf, "--output", str(root / "p.parquet"))
    scored = pl.read_parquet(root / "p.parquet").sort("horizon")
    assert scored["horizon"].to_list() == list(HORIZONS)
    assert scored["model_name"].to_list() == [NAMES[h] for h in HORIZONS]
    # each horizon's row is what its own model gives when asked for alone
    for h in HORIZONS:
        alone = root / f"alone{h}.parquet"
        uri = f"models:/{NAMES[h]}@champion"
        invoke_ok("score", "--config", conf, "--model-uri", uri, "--output", str(alone))
        row = pl.read_parquet(alone)
        assert row["horizon"].to_list() == [h]
        assert row["prediction"][0] == scored.filter(pl.col("horizon") == h)["prediction"][0]
    replayed = root / "r.parquet"
    args = ["--start", "2026-08-03", "--end", "2026-09-25", "--output", str(replayed)]
    invoke_ok("score", "--config", conf, *args)
    counts = pl.read_parquet(replayed).group_by("horizon").len().sort("horizon")
    assert counts["horizon"].to_list() == list(HORIZONS)
    assert len(set(counts["len"].to_list())) == 1  # every date for every horizon


def test_backtest_writes_a_report_per_horizon(project: dict[str, Any]) -> None:
    out = project["root"] / "bt"
    invoke_ok("backtest", "--config", str(project["conf"]), "--output-dir", str(out))
    assert not (out / "metrics.json").exists()
    for h in HORIZONS:
        metrics = json.loads((out / f"h{h}" / "metrics.json").read_text())
        assert metrics["horizon"] == h
        trained = project["summary"]["by_horizon"][str(h)]["backtest"]
        assert metrics["rmse"] == pytest.approx(trained["rmse"], abs=1e-12)
        assert metrics["sharpe"] == pytest.approx(trained["sharpe"], abs=1e-9)


def test_monitor_reports_every_horizon(project: dict[str, Any]) -> None:
    out = project["root"] / "mon"
    result = invoke_ok("monitor", "--config", str(project["conf"]), "--output-dir", str(out))
    for h in HORIZONS:
        report = json.loads((out / f"h{h}" / "monitor.json").read_text())
        assert report["model"]["name"] == NAMES[h]
        assert report["model"]["horizon"] == h
        assert f"(h={h})" in result.output


def test_models_commands_take_a_horizon(project: dict[str, Any]) -> None:
    conf = str(project["conf"])
    listed = invoke_ok("models", "list", "--config", conf, "--horizon", "5", "--format", "json")
    assert [v["tags"]["horizon"] for v in json.loads(listed.output)] == ["5"]
    moved = invoke_ok("models", "promote", "1", "--config", conf, "--horizon", "20")
    assert "StocksPredictionModel_h20@champion -> v1" in moved.output
    bad = CliRunner().invoke(main, ["models", "list", "--config", conf, "--horizon", "2"])
    assert bad.exit_code == 2 and "horizon 2 is not configured" in bad.output
