"""`stockpipe monitor` on the shipped NVDA history around a volatility regime change (issue 24).

A model is trained (`stockpipe train`, the shipped features, one cheap ridge trial, a real
MLflow sqlite store) on the NVDA and SPY sample files cut before 2025-01-01. Then:

* **Drifted.** The full NVDA history with every daily log return from 2025-01-01 on tripled
  (each day's open/high/low/close scaled by the same factor as its close; volume unchanged),
  cut at the 20th trading day after the change (2025-01-31): `monitor` alerts (exit 3) on the
  volatility inputs, names NVDA, and dates the episode in January 2025. The calendar inputs and
  the volume level, which did not change, stay ok.
* **Real.** The shipped history as it is, to its last row (2026-09-25) and cut at the same day:
  no alert, exit 0.

The data are the shipped files and the seed is fixed, so every number is deterministic.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from support import SAMPLE, invoke_ok, make_project, overlay

from pipeline.cli import main

pytestmark = pytest.mark.slow

CHANGE = dt.date(2025, 1, 1)  # the regime changes from this day on
FACTOR = 3.0  # daily log returns multiplied by this after CHANGE
DAYS_AFTER = 20  # trading days after CHANGE (inclusive) the drifted file holds
OHLC = ("open", "high", "low", "close")
# The shipped inputs that measure volatility: the only ones a tripled volatility may alert.
VOLATILITY = frozenset(
    {
        "rolling_std_logret_1_5",
        "rolling_std_logret_1_20",
        "rolling_std_logret_1_60",
        "ewm_vol_logret_1_10",
        "ewm_vol_logret_1_30",
        "bb_width_20_2",
        "natr_14",
        "hl_range",
    }
)
CALENDAR = ("cal_day_of_week", "cal_month", "cal_days_to_month_end")
RIDGE = {  # the cheapest candidate: one ridge trial on the shipped features
    "name": "ridge",
    "estimator": "ridge",
    "n_trials": 1,
    "space": {"alpha": {"type": "float", "low": 0.1, "high": 100.0, "log": True}},
}


def _read(ticker: str) -> pl.DataFrame:
    return pl.read_csv(SAMPLE / f"{ticker}.csv", try_parse_dates=True)


def _write(frame: pl.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return path


def regime_change(frame: pl.DataFrame, change: dt.date, factor: float) -> pl.DataFrame:
    """``frame`` with each daily log return from ``change`` on multiplied by ``factor``: each
    day's open/high/low/close multiplied by its new close over its old one; volume as is."""
    logret = (pl.col("close") / pl.col("close").shift(1)).log().fill_null(0.0)
    extra = pl.when(pl.col("date") >= change).then(logret * (factor - 1.0)).otherwise(0.0)
    ratio = extra.cum_sum().exp()
    return frame.with_columns(ratio.alias("_ratio")).select(
        "date", *[(pl.col(c) * pl.col("_ratio")).alias(c) for c in OHLC], "volume"
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Trained once on NVDA and SPY before CHANGE; monitoring then reads the full SPY file."""
    root = tmp_path_factory.mktemp("regime")
    nvda, spy = _read("NVDA"), _read("SPY")
    before = pl.col("date") < CHANGE
    train_nvda = _write(nvda.filter(before), root / "train" / "NVDA.csv")
    train_spy = _write(spy.filter(before), root / "train" / "SPY.csv")
    conf = make_project(
        root,
        data={"path": str(train_nvda), "benchmark_path": str(train_spy)},
        candidates={"candidates": [RIDGE]},
    )
    invoke_ok("train", "--config", str(conf), "--trials", "1", "--quiet")
    # The benchmark of the monitored days: the config's, as a deployment would update it.
    overlay(conf, "data", benchmark_path=str(SAMPLE / "SPY.csv"))
    day = nvda.filter(~before).get_column("date")[DAYS_AFTER - 1]
    drifted = regime_change(nvda, CHANGE, FACTOR).filter(pl.col("date") <= day)
    return {
        "root": root,
        "conf": conf,
        "day": day,  # the DAYS_AFTER-th trading day from CHANGE on
        "drifted": _write(drifted, root / "drifted" / "NVDA.csv"),
        "real_cut": _write(nvda.filter(pl.col("date") <= day), root / "real_cut" / "NVDA.csv"),
    }


def _monitor(project: dict[str, Any], data: Path, out: str) -> tuple[int, dict[str, Any], str]:
    """`stockpipe monitor --data data`: its exit code, monitor.json and console output (the
    console script's exit code is tested in test_monitor_e2e.py; in process saves seconds)."""
    folder = project["root"] / out
    args = ["monitor", "--config", str(project["conf"]), "--data", str(data)]
    result = CliRunner().invoke(main, [*args, "--output-dir", str(folder)], catch_exceptions=False)
    assert result.exit_code in (0, 3), result.output
    doc = json.loads((folder / "monitor.json").read_text())
    return result.exit_code, doc, result.output


def _alerted(doc: dict[str, Any]) -> set[str]:
    return {n for n, d in doc["drift"]["features"].items() if d["status"] == "alert"}


def test_the_drifted_file_alerts_on_volatility_in_nvda(project: dict[str, Any]) -> None:
    assert project["day"] == dt.date(2025, 1, 31)  # 20 trading days (no trading on 01-09)
    code, doc, output = _monitor(project, project["drifted"], "drifted_out")
    assert code == 3, output
    drift = doc["drift"]
    assert doc["status"] == "alert" and drift["status"] == "alert"
    assert doc["window"]["last_date"] == str(project["day"])
    alerted = _alerted(doc)
    assert {"rolling_std_logret_1_20", "ewm_vol_logret_1_10"} <= alerted <= VOLATILITY
    features = drift["features"]
    assert {f: features[f]["status"] for f in CALENDAR} == dict.fromkeys(CALENDAR, "ok")
    assert drift["data"]["volume_level_5"]["status"] == "ok"  # volume did not change
    for name in alerted:
        since = dt.date.fromisoformat(features[name]["since"])
        assert CHANGE <= since <= project["day"] and since.month == 1, (name, since)
        assert features[name]["tickers"] == ["NVDA"]
    assert drift["tickers"] == {"NVDA": "alert"}
    lines = drift["alerts"]
    assert lines and all(" in NVDA" in line for line in lines)
    assert {line.split(":")[0] for line in lines if ": alert" in line} >= alerted
    assert doc["headline"].startswith("alert: drift alert in NVDA (")
    assert "ewm_vol_logret_1_10" in output


def test_the_real_history_does_not_alert(project: dict[str, Any]) -> None:
    code, doc, _ = _monitor(project, SAMPLE / "NVDA.csv", "real_out")
    assert doc["window"]["last_date"] == "2026-09-25"
    assert code == 0 and doc["drift"]["status"] != "alert" and _alerted(doc) == set()


def test_the_real_history_to_the_same_day_does_not_alert(project: dict[str, Any]) -> None:
    code, doc, _ = _monitor(project, project["real_cut"], "real_cut_out")
    assert doc["window"]["last_date"] == str(project["day"])
    assert code == 0 and doc["drift"]["status"] != "alert" and _alerted(doc) == set()
