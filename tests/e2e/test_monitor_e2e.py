"""`stockpipe monitor` end to end: `stockpipe train` on synthetic prices, `stockpipe score
--start --end` replaying the days after training into the prediction log, then `monitor`.

Drift: the volatility triples after the training cut, so the volatility features alert while
the calendar features stay ok, and the command exits 3; the same history without the shift
alerts on nothing and exits 0. Live performance: a planted AR(1) signal is found live as in
the backtest (status ok); a random walk is live at chance (directional accuracy within the
binomial band around 1/2). Seeds are fixed, so every number is deterministic.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner, Result
from support import make_project, run_stockpipe, write_yaml

from pipeline.cli import main

pytestmark = pytest.mark.slow

TRAIN_DAYS = 2000  # training history; the days after it are "live"
LIVE_DAYS = 250
DAILY_VOL = 0.01
VOLATILITY = ("rolling_std_logret_1_20", "ewm_vol_logret_1_10", "natr_14", "bb_width_20_2")
NOISY = ("rolling_std_logret_1_5",)
CALENDAR = ("cal_day_of_week", "cal_month", "cal_days_to_month_end")


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _prices(seed: int, phi: float = 0.0, vol_after_cut: float = 1.0) -> pl.DataFrame:
    """Weekday OHLCV whose log returns are AR(1) with coefficient ``phi``, their volatility
    (and the bars' ranges) multiplied by ``vol_after_cut`` after TRAIN_DAYS."""
    n = TRAIN_DAYS + LIVE_DAYS
    rng = np.random.default_rng(seed)
    scale = np.where(np.arange(n) < TRAIN_DAYS, 1.0, vol_after_cut)
    eps = rng.normal(0.0, DAILY_VOL, n) * scale
    r = np.empty(n)
    r[0] = eps[0]
    for t in range(1, n):
        r[t] = phi * r[t - 1] + eps[t]
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = close * np.exp(rng.normal(0.0, 0.002, n) * scale)
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.01, n) * scale)
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.01, n) * scale)
    days = pl.date_range(dt.date(2010, 1, 4), dt.date(2040, 12, 31), "1d", eager=True)
    return pl.DataFrame(
        {
            "date": days.filter(days.dt.weekday() <= 5)[:n],
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.integers(1_000_000, 5_000_000, n).astype(float),
        }
    )


def _project(root: Path, prices: pl.DataFrame) -> dict[str, Any]:
    """A project trained (`stockpipe train`) on the first TRAIN_DAYS rows of ``prices``, no
    market features, a small ridge competition; the full file is written next to it."""
    train_csv, full_csv = root / "train" / "SYN.csv", root / "SYN.csv"
    train_csv.parent.mkdir()
    prices.head(TRAIN_DAYS).write_csv(train_csv)
    prices.write_csv(full_csv)
    ridge = {
        "name": "ridge",
        "estimator": "ridge",
        "n_trials": 3,
        "space": {
            "alpha": {"type": "float", "low": 0.01, "high": 100.0, "log": True},
            "selector__k": {"type": "int", "low": 5, "high": 20},
        },
    }
    training = {"folds": {"n_folds": 4, "test_size": 250}, "strategy": {"cost_bps": 0.0}}
    conf = make_project(
        root,
        data={"path": str(train_csv), "benchmark_path": None},
        training=training,
        candidates={"candidates": [ridge]},
    )
    write_yaml(conf / "local" / "model.yaml", {"features": {"market": None}})
    result = _invoke("train", "--config", str(conf), "--quiet")
    assert result.exit_code == 0, result.output
    return {"root": root, "conf": conf, "full": full_csv, "dates": prices["date"].to_list()}


def _monitor(project: dict[str, Any], data: Path, out: str) -> tuple[int, dict[str, Any]]:
    folder = project["root"] / out
    args = ("monitor", "--config", str(project["conf"]), "--data", str(data))
    result = _invoke(*args, "--output-dir", str(folder))
    assert result.exit_code in (0, 3), result.output
    return result.exit_code, json.loads((folder / "monitor.json").read_text())


@pytest.fixture(scope="module")
def calm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Trained on a random walk of constant volatility; shifted.csv triples it after the cut."""
    project = _project(tmp_path_factory.mktemp("calm"), _prices(seed=3))
    shifted = project["root"] / "shifted" / "SYN.csv"
    shifted.parent.mkdir()
    _prices(seed=3, vol_after_cut=3.0).write_csv(shifted)
    return {**project, "shifted": shifted}


def test_tripled_volatility_alerts_its_features_and_exits_3(calm: dict[str, Any]) -> None:
    # The installed console script: the exit code cron and CI would see.
    out = calm["root"] / "shift_out"
    args = ("--config", str(calm["conf"]), "--data", str(calm["shifted"]))
    proc = run_stockpipe(calm["root"], "monitor", *args, "--output-dir", str(out))
    assert proc.returncode == 3, proc.stderr
    doc = json.loads((out / "monitor.json").read_text())
    features = doc["drift"]["features"]
    # Every volatility input left its training range; the smoothed ones alert (a 5-day std is
    # noisy enough to dip back inside on some of the last days: at least warn).
    assert {f: features[f]["status"] for f in VOLATILITY} == dict.fromkeys(VOLATILITY, "alert")
    assert all(features[f]["status"] in ("warn", "alert") for f in NOISY)
    assert {f: features[f]["status"] for f in CALENDAR} == dict.fromkeys(CALENDAR, "ok")
    assert doc["drift"]["status"] == "alert" and doc["status"] == "alert"
    assert doc["drift"]["detector"] == "novelty"
    assert list(doc["drift"]["tickers"].values()) == ["alert"]
    assert doc["headline"].startswith(
        f"alert: drift alert in {next(iter(doc['drift']['tickers']))} ("
    )
    assert doc["drift"]["alerts"] and all(
        " beyond its training range " in a for a in doc["drift"]["alerts"]
    )
    # the history did not change, only the window: the predictions' spread follows the inputs
    assert doc["drift"]["predictions"]["psi"] is not None
    assert doc["performance"]["status"] == "insufficient"  # nothing logged yet: not an alert


def test_the_same_history_unshifted_alerts_nothing_and_exits_0(calm: dict[str, Any]) -> None:
    code, doc = _monitor(calm, calm["full"], "calm_out")
    assert code == 0
    alerted = [f for f, d in doc["drift"]["features"].items() if d["status"] == "alert"]
    assert alerted == []
    assert doc["drift"]["status"] in {"ok", "warn"} and doc["status"] != "alert"
    assert doc["drift"]["detector"] == "novelty" and doc["drift"]["alerts"] == [
        m for m in doc["drift"]["alerts"] if m.split(": ")[1].startswith("warn")
    ]


def _replay_and_monitor(project: dict[str, Any]) -> dict[str, Any]:
    """Replay every live day (but the last, whose outcome is unknown) into the log, then
    monitor: the track record a new champion builds after training."""
    dates = project["dates"]
    start, end = str(dates[TRAIN_DAYS]), str(dates[-2])
    result = _invoke(
        "score", "--config", str(project["conf"]), "--data", str(project["full"]),
        "--start", start, "--end", end, "--output", str(project["root"] / "replay.parquet"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    code, doc = _monitor(project, project["full"], "live_out")
    assert code == 0
    return doc


def test_a_planted_signal_is_found_live_as_in_the_backtest(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    project = _project(tmp_path_factory.mktemp("signal"), _prices(seed=1, phi=0.3))
    perf = _replay_and_monitor(project)["performance"]
    assert perf["n"] == LIVE_DAYS - 1 and perf["status"] == "ok"
    # P(sign match) = 1/2 + arcsin(0.3) / pi ~ 0.597 for a Gaussian AR(1); IC ~ phi
    assert perf["directional_accuracy"] > 0.55 and perf["ic"] > 0.15
    band = perf["band"]["directional_accuracy"]
    assert band["warn_below"] <= perf["directional_accuracy"] and band["median"] > 0.55
    assert perf["band"]["ic"]["warn_below"] <= perf["ic"]
    assert perf["rmse"] < perf["rmse_zero"]


def test_a_random_walk_is_live_at_chance(tmp_path_factory: pytest.TempPathFactory) -> None:
    project = _project(tmp_path_factory.mktemp("walk"), _prices(seed=12))
    perf = _replay_and_monitor(project)["performance"]
    n = perf["n"]
    half_width = NormalDist().inv_cdf(0.995) * math.sqrt(0.25 / n)  # 99% binomial band
    assert abs(perf["directional_accuracy"] - 0.5) <= half_width
    assert abs(perf["ic"]) <= NormalDist().inv_cdf(0.995) / math.sqrt(n)
    assert perf["status"] in {"ok", "warn"}  # consistent with a backtest that had no skill
    band = perf["band"]["directional_accuracy"]
    assert band["alert_below"] < 0.5 < band["high"]
