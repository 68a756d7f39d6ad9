"""`monitor` on real components: a real sqlite MLflow registry holding real fitted pipelines, a
real DuckDB prediction log joined to the shipped NVDA prices. Live metrics are checked against
a numpy oracle over the price file, never against our own output."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner, Result
from support import REPO, SAMPLE, fitted_model, make_project, sample_prices

from pipeline import bootstrap
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.domain import LOG_COLUMNS
from pipeline.monitoring.monitor import monitor
from pipeline.monitoring.profile import (
    BACKTEST_PREDICTIONS,
    PROFILE_ARTIFACT,
    PROFILE_TAG,
    build_profile,
)
from pipeline.schemas import SCHEMA_DIR
from pipeline.settings import StockpipeConfig

NAME = "StocksPredictionModel"
LIVE_DAYS = 120  # the last days of the sample are "live": logged predictions after training


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _register(cfg: StockpipeConfig, with_profile: bool) -> tuple[str, np.ndarray]:
    """A fitted NVDA pipeline registered as a new version; returns it and its predictions
    on every row of the sample. With a profile (and the backtest's rows) like `train` logs."""
    fitted = fitted_model()
    prices = sample_prices("NVDA")
    preds = np.asarray(fitted.predictor.predict(prices.to_pandas()), dtype=float)
    tags = {"horizon": "1", "warmup_rows": str(fitted.warmup)}
    with bootstrap.tracker(cfg).start_run("fit") as run:
        example = prices.tail(fitted.warmup + 5).to_pandas()
        uri = run.log_model(fitted.predictor, example, {})
        if with_profile:
            train = prices.head(prices.height - LIVE_DAYS)
            step = fitted.predictor.named_steps["features"]
            X = step.transform(train)[fitted.warmup :]
            dates = train["date"].to_numpy()[fitted.warmup :]
            back = slice(train.height - 500, train.height - 1)  # the last rows with a label
            back_dates = train["date"].to_numpy()[back]
            columns = tuple(step.feature_names_out_)
            profile = build_profile(X, columns, dates, preds[back], back_dates)
            run.log_text(profile.model_dump_json(), PROFILE_ARTIFACT)
            _log_backtest(run, train, preds, back)
            tags[PROFILE_TAG] = run.run_id
        version = bootstrap.registry(cfg).register(uri, run.run_id, tags)
    return version, preds


def _log_backtest(run: Any, train: pl.DataFrame, preds: np.ndarray, rows: slice) -> None:
    close = train["close"].to_numpy()
    realised = np.log(close[1:] / close[:-1])
    frame = pl.DataFrame(
        {
            "ticker": "NVDA",
            "date": train["date"][rows],
            "fold": 0,
            "prediction": preds[rows],
            "realised": realised[rows],
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(BACKTEST_PREDICTIONS).name
        frame.write_parquet(path)
        run.log_artifact(path, str(Path(BACKTEST_PREDICTIONS).parent))


def _log_rows(dates: list[dt.date], preds: np.ndarray, version: str, source: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ticker": "NVDA",
            "as_of_date": dates,
            "horizon": 1,
            "prediction": preds,
            "model_name": NAME,
            "model_version": version,
            "run_id": "r",
            "scored_at": [dt.datetime(2026, 9, 1, 12, k % 3) for k in range(len(dates))],
            "source": source,
        },
        schema_overrides={"horizon": pl.Int32},
    ).select(LOG_COLUMNS)


# Tests using it are slow: it logs two real models (a few seconds each).
@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """v1 without a profile (registered before profiles existed), v2 with one; v2's last
    LIVE_DAYS predictions in the log: replayed, the last 3 scored on their evening; a client
    of the API asked for those 3 too and was told other numbers (the API logs them beside
    the score rows: they must not be graded)."""
    root = tmp_path_factory.mktemp("monitor")
    cfg = load_config(make_project(root))
    old, _ = _register(cfg, with_profile=False)
    version, preds = _register(cfg, with_profile=True)
    dates = sample_prices("NVDA")["date"].to_list()
    live = slice(len(dates) - LIVE_DAYS, len(dates))
    warehouse = bootstrap.store(cfg)
    warehouse.record(_log_rows(dates[live][:-3], preds[live][:-3], version, "replay"))
    warehouse.record(_log_rows(dates[live][-3:], preds[live][-3:], version, "score"))
    warehouse.record(_log_rows(dates[live][-3:], -preds[live][-3:], version, "api"))
    return {"root": root, "cfg": cfg, "old": old, "version": version, "preds": preds}


@pytest.mark.slow
def test_every_section_with_live_numbers_from_the_price_file(project: dict[str, Any]) -> None:
    cfg, version = project["cfg"], project["version"]
    out = project["root"] / "out"
    report = monitor(cfg, bootstrap.monitor_ports(cfg), out, f"models:/{NAME}/{version}")
    doc = json.loads((out / "monitor.json").read_text())
    published = json.loads((REPO / SCHEMA_DIR / "monitor.schema.json").read_text())
    pytest.importorskip("jsonschema").validate(doc, published)  # what cron and CI read
    assert doc["model"] == {
        "name": NAME,
        "version": version,
        "uri": f"models:/{NAME}/{version}",
        "run_id": doc["model"]["run_id"],
        "horizon": 1,
    }
    assert doc["status"] == report.status and doc["window"]["rows"] == 60
    features = doc["drift"]["features"]
    assert set(features) == set(fitted_model().predictor.named_steps["features"].feature_names_out_)
    assert {"rolling_std_logret_1_20", "hl_range"} <= set(features)
    for f in features.values():
        assert {"psi", "ks_pvalue", "status"} <= set(f) and f["status"] in {"ok", "warn", "alert"}
    assert {"psi", "status"} <= set(doc["drift"]["predictions"])
    _check_live_numbers(doc["performance"], project["preds"])
    assert doc["performance"]["sources"] == ["score", "cycle", "replay"]
    assert doc["health"]["requests"] == 3 and doc["health"]["prediction_rows"] == 3
    assert (out / "dashboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _check_run(cfg, doc["run_id"], version, doc["status"])


def _check_live_numbers(perf: dict[str, Any], preds: np.ndarray) -> None:
    """The oracle: realised log returns from the price file, the metrics by hand in numpy."""
    close = pl.read_csv(SAMPLE / "NVDA.csv")["close"].to_numpy()
    n = LIVE_DAYS - 1  # the last as-of date has no realised return yet
    idx = np.arange(close.size - LIVE_DAYS, close.size - 1)
    y, p = np.log(close[idx + 1] / close[idx]), preds[idx]
    assert perf["n"] == n
    assert perf["directional_accuracy"] == pytest.approx(np.mean((y > 0) == (p > 0)), abs=1e-12)
    assert perf["ic"] == pytest.approx(np.corrcoef(y, p)[0, 1], abs=1e-9)
    assert perf["rmse"] == pytest.approx(np.sqrt(np.mean((y - p) ** 2)), abs=1e-12)
    assert perf["rmse_zero"] == pytest.approx(np.sqrt(np.mean(y**2)), abs=1e-12)
    # long/flat by sign, 5 bps per unit of turnover (training.yaml): the equity by hand
    pos = (p > 0).astype(float)
    net = pos * np.expm1(y) - 5e-4 * np.abs(np.diff(pos, prepend=0.0))
    assert perf["strategy_total_return"] == pytest.approx(np.prod(1 + net) - 1, abs=1e-9)
    assert perf["strategy_sharpe"] == pytest.approx(
        net.mean() / net.std(ddof=1) * np.sqrt(252), abs=1e-9
    )
    band = perf["band"]["directional_accuracy"]
    assert band["alert_below"] <= band["warn_below"] <= band["median"] <= band["high"]
    assert perf["status"] in {"ok", "warn", "alert"}
    assert len(perf["rolling"]["dates"]) == n - 20 + 1


def _check_run(cfg: StockpipeConfig, run_id: str, version: str, status: str) -> None:
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["model_name"] == NAME and run.data.tags["model_version"] == version
    assert run.data.tags["monitor_status"] == status
    assert "live_directional_accuracy" in run.data.metrics
    logged = {a.path for a in client.list_artifacts(run_id, "monitor")}
    assert logged == {"monitor/monitor.json", "monitor/dashboard.png", "monitor/report.html"}


@pytest.mark.slow
def test_a_version_without_profile_reports_unavailable(project: dict[str, Any]) -> None:
    cfg, old = project["cfg"], project["old"]
    report = monitor(
        cfg, bootstrap.monitor_ports(cfg), project["root"] / "old", f"models:/{NAME}/{old}"
    )
    assert report.drift.status == "unavailable" and report.drift.features == {}
    assert report.drift.reason is not None and "no reference profile" in report.drift.reason
    assert report.performance.status == "insufficient" and report.performance.n == 0
    assert report.health is None and report.status == "unavailable"


@pytest.mark.slow
def test_cli_empty_log_is_insufficient_and_exits_0(project: dict[str, Any]) -> None:
    """Another project on the same registry, with an empty warehouse (no prediction log)."""
    root = project["root"]
    conf = make_project(
        root,
        "conf_empty",
        data={"warehouse": str(root / "empty.duckdb")},
    )
    out = root / "empty_out"
    result = _invoke(
        "monitor",
        "--config",
        str(conf),
        "--model-uri",
        f"models:/{NAME}/{project['version']}",
        "--output-dir",
        str(out),
        "--window",
        "30",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "monitor.json").read_text())
    assert doc["performance"]["status"] == "insufficient" and doc["performance"]["n"] == 0
    assert doc["window"]["days"] == 30 and doc["drift"]["window"] == 30
    assert "insufficient" in result.output


@pytest.mark.slow
def test_cli_grades_the_sources_asked_for(project: dict[str, Any]) -> None:
    """`--sources api`: only the API's 3 rows (2 with a realised return), too few to judge."""
    out = project["root"] / "api_out"
    result = _invoke(
        "monitor",
        "--config",
        str(project["root"] / "conf"),
        "--model-uri",
        f"models:/{NAME}/{project['version']}",
        "--output-dir",
        str(out),
        "--sources",
        "api",
    )
    assert result.exit_code == 0, result.output
    perf = json.loads((out / "monitor.json").read_text())["performance"]
    assert perf["sources"] == ["api"] and perf["n"] == 2 and perf["status"] == "insufficient"
    assert "performance (api): insufficient, n=2" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model-uri", f"models:/{NAME}/9"), f"no registered model named '{NAME}'"),
        (("--window", "1"), "--window: Input should be greater than or equal to 2"),
        (("--sources", "score,apii"), "--sources score,apii: give one or more distinct"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    conf_dir: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = CliRunner().invoke(main, ["monitor", "--config", str(conf_dir), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "outputs").exists()
