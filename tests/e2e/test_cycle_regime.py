"""A volatility regime planted mid-month brings one retrain through ``retrain.on_alert``.

`train` on a synthetic random walk, then `cycle --data` evening by evening (in this process),
the volatility multiplied by VOL_FACTOR from evening REGIME_STARTS on. The schedule alone
would never retrain here (``every_days`` is longer than the month): the first evening whose
monitor alerts retrains (the reason says so), and the evenings after it that still alert do
not, whatever the gate said (one alert episode, one retrain). An alerting evening exits 3
unless the retrain promoted a better model.

Depends on `monitor`'s drift detector (pipeline/monitoring/): a planted regime must make it
alert within the month.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from support import invoke_ok, make_project, overlay, write_yaml

from pipeline.cli import main
from pipeline.operations.record import CycleRecord, RecordStore

pytestmark = pytest.mark.slow

TRAIN_DAYS = 1300
EVENINGS = 8
REGIME_STARTS = 4  # the first evening of the volatile regime (1-based)
VOL_FACTOR = 5.0
RIDGE = {
    "name": "ridge",
    "estimator": "ridge",
    "n_trials": 1,
    "space": {"alpha": {"type": "float", "low": 0.1, "high": 100.0, "log": True}},
}


def prices(seed: int = 5) -> pl.DataFrame:
    """Weekday OHLCV of a random walk (1% a day), VOL_FACTOR times as volatile (returns and
    bar ranges) from evening REGIME_STARTS after the TRAIN_DAYS training rows on."""
    n = TRAIN_DAYS + EVENINGS
    rng = np.random.default_rng(seed)
    scale = np.where(np.arange(n) < TRAIN_DAYS + REGIME_STARTS - 1, 1.0, VOL_FACTOR)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n) * scale))
    open_ = close * np.exp(rng.normal(0.0, 0.002, n) * scale)
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.01, n) * scale)
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.01, n) * scale)
    days = pl.date_range(dt.date(2015, 1, 5), dt.date(2030, 12, 31), "1d", eager=True)
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


@pytest.fixture(scope="module")
def regime(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("regime")
    bars = prices()
    files = []
    for rows in range(TRAIN_DAYS, TRAIN_DAYS + EVENINGS + 1):
        path = root / "evenings" / str(rows) / "SYN.csv"
        path.parent.mkdir(parents=True)
        bars.head(rows).write_csv(path)
        files.append(path)
    training = {"folds": {"n_folds": 2, "test_size": 200}, "summary_path": str(root / "s.json")}
    conf = make_project(
        root,
        data={"path": str(files[0]), "benchmark_path": None},
        training=training,
        candidates={"candidates": [RIDGE]},
    )
    write_yaml(conf / "local" / "model.yaml", {"features": {"market": None}})
    overlay(conf, "operations", retrain={"every_days": 100, "on_alert": True})
    invoke_ok("train", "--config", str(conf), "--quiet")
    codes = []
    for path in files[1:]:
        args = ["cycle", "--config", str(conf), "--data", str(path), "--trials", "1"]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code in (0, 3), result.output
        codes.append(result.exit_code)
    store = RecordStore(root / "outputs" / "cycles")
    days = bars["date"][TRAIN_DAYS:].to_list()
    return {"root": root, "codes": codes, "records": [store.read(day) for day in days]}


def test_the_first_alerting_evening_retrains_and_the_rest_of_the_episode_does_not(
    regime: dict[str, Any],
) -> None:
    records: list[CycleRecord] = regime["records"]
    assert len(records) == EVENINGS
    alerted = [i for i, r in enumerate(records, start=1) if r.alerted]
    retrained = [i for i, r in enumerate(records, start=1) if r.steps["retrain"].status == "done"]
    assert alerted, [r.monitor for r in records]  # the detector saw the regime within the month
    assert alerted[0] >= REGIME_STARTS  # and nothing before it
    assert retrained == [alerted[0]] and alerted[0] < EVENINGS  # evenings are left after it
    first = records[alerted[0] - 1].retrain
    assert first is not None and first.on_alert and not first.scheduled
    for rec in records[alerted[0] :]:
        assert rec.retrain is not None and not rec.retrain.due
        if rec.alerted:
            assert "already answered this alert" in rec.retrain.reason


def test_an_alerting_evening_exits_3_unless_a_better_model_was_promoted(
    regime: dict[str, Any],
) -> None:
    for code, rec in zip(regime["codes"], regime["records"], strict=True):
        promoted = any(r.promoted for r in rec.retrained)
        assert code == rec.exit_code == (3 if rec.alerted and not promoted else 0)
