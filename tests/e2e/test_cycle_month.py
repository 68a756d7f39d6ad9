"""A simulated month of `stockpipe cycle`, evening by evening, on real components.

`train` on the NVDA sample cut 25 trading days before its end, then for each of those 25
days `cycle --data` with the history up to that day (``retrain.every_days: 10``, one ridge
candidate, ``--trials 1``), in this process through the CLI (25 subprocesses would spend most
of their time importing). Then:

- exactly one logged prediction per trading date and horizon, with source ``cycle``, each
  equal to a plain `score` of the same version on the data cut at that date;
- retrains on the days they are due (every 10 trading days after the data the last retrain
  used) and only then;
- the champion moves only when the gate says so;
- a rerun of the last evening does no work.

Three evenings of the month are first run in a child process killed with SIGKILL at a step,
then rerun here: during score (its rows committed to the log), during monitor (its MLflow run
open) and during the retrain (its version registered, the alias not moved yet; meanwhile a
second cycle of the project, started here, exits 5 at once). The child reaches the step and
waits there (the step's function is wrapped to announce it and sleep), so the kill lands
exactly there, not before or after it as a timed kill might. The month's invariants above
must hold across the kills: that is the "rerun completes the evening" guarantee.

``retrain.on_alert`` is off here so that the schedule alone decides (the alert path is
tests/e2e/test_cycle_regime.py); an alerting evening still exits 3, and only then.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
import pytest
from click.testing import CliRunner, Result
from support import SAMPLE, invoke_ok, make_project, overlay, wait_until

from pipeline.bootstrap import scratch_warehouse
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.data.predlog import SQLiteLog
from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import LoadedModel
from pipeline.operations.record import CycleRecord, RecordStore
from pipeline.serving.score import ScorePorts, score
from pipeline.serving.sinks import ParquetSink
from pipeline.tracking.loader import MlflowModelLoader

pytestmark = pytest.mark.slow

DAYS = 25
EVERY = 10
NAME = "StocksPredictionModel"
RIDGE = {
    "name": "ridge",
    "estimator": "ridge",
    "n_trials": 1,
    "space": {"alpha": {"type": "float", "low": 0.1, "high": 1000.0, "log": True}},
}
# Replay seeds recursive features (EWM, MACD, RSI) at the start of its window, `score` at the
# start of its own; the weight left on either seed is below 1e-8 once warmed up
# (pipeline/serving/replay.py), so a replayed date may differ from `score` by that much. One
# evening's replay reads exactly `score`'s window, so here they agree far closer (printed).
TOLERANCE = 1e-8
KILLS = {3: "score", 6: "monitor", EVERY: "retrain"}  # evening -> the step it is killed at
# `stockpipe cycle ARGS...` in a child that stops at STEP: the step's function is wrapped to
# write STEP into FLAG and sleep, and the test kills the child there with SIGKILL.
PAUSE_AT = """
import pathlib, sys, time
from pipeline.cli import main

step, flag, args = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3:]


def pause():
    flag.write_text(step)
    time.sleep(600)


if step == "score":  # the evening's rows are committed to the prediction log
    from pipeline.data.predlog import SQLiteLog

    record = SQLiteLog.record

    def record_then_pause(self, frame):
        record(self, frame)
        pause()

    SQLiteLog.record = record_then_pause
elif step == "monitor":  # its files written, its MLflow run still open
    from pipeline.tracking.mlflow_adapter import MlflowRun

    set_tags = MlflowRun.set_tags

    def pause_in_monitor_run(self, tags):
        if "monitor_status" in tags:
            pause()
        set_tags(self, tags)

    MlflowRun.set_tags = pause_in_monitor_run
elif step == "retrain":  # the version registered (intent pending), the alias not moved
    from pipeline.tracking.registry import MlflowRegistry

    MlflowRegistry.set_alias = lambda self, *args, **kwargs: pause()
main(args)
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


class Loaded:
    """The registry's loader, each version loaded once (the oracle scores 25 evenings)."""

    def __init__(self, uri: str) -> None:
        self.inner, self.cache = MlflowModelLoader(uri), {}  # type: ignore[var-annotated]

    def load(self, model_uri: str) -> LoadedModel:
        if model_uri not in self.cache:
            self.cache[model_uri] = self.inner.load(model_uri)
        return self.cache[model_uri]


def evening_files(root: Path, days: list[dt.date]) -> dict[dt.date, Path]:
    """The NVDA history up to each day, as ``<root>/<day>/NVDA.csv`` (a cron job's file)."""
    rows = pl.read_csv(SAMPLE / "NVDA.csv", try_parse_dates=True)
    out = {}
    for day in days:
        path = root / str(day) / "NVDA.csv"
        path.parent.mkdir(parents=True)
        rows.filter(pl.col("date") <= day).write_csv(path)
        out[day] = path
    return out


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("month")
    training = {"summary_path": str(root / "summary.json")}
    conf = make_project(root, training=training, candidates={"candidates": [RIDGE]})
    overlay(conf, "operations", retrain={"every_days": EVERY, "on_alert": False})
    overlay(conf, "monitoring", band_samples=200)  # the bootstrap band: enough for a check
    dates = pl.read_csv(SAMPLE / "NVDA.csv", try_parse_dates=True)["date"].to_list()
    cut, days = dates[-DAYS - 1], dates[-DAYS:]
    files = evening_files(root / "evenings", [cut, *days])
    # The first champion with another seed than the cycles' retrains: another alpha, so the
    # gate has a real choice to make on the first retrain.
    args = ("--config", str(conf), "--data", str(files[cut]), "--trials", "1", "--seed", "7")
    invoke_ok("train", *args, "--quiet")
    seconds, results, kills = [], [], {}
    for i, day in enumerate(days, start=1):
        args = ("cycle", "--config", str(conf), "--data", str(files[day]), "--trials", "1")
        if i in KILLS:
            kills[KILLS[i]] = kill_at(KILLS[i], root, conf, args) | left_behind(conf, day)
        started = time.perf_counter()
        results.append(invoke(*args))
        seconds.append(time.perf_counter() - started)
    return {"root": root, "conf": conf, "days": days, "cut": cut, "files": files} | {
        "seconds": seconds,
        "results": results,
        "kills": kills,
    }


def kill_at(step: str, root: Path, conf: Path, args: tuple[str, ...]) -> dict[str, Any]:
    """Run ``args`` in a child, SIGKILL it at ``step``; what the kill left behind. At the
    retrain, a second cycle of the project runs meanwhile (it must exit 5 at once)."""
    flag, out = root / f"{step}.paused", root / f"{step}.log"
    with out.open("w") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", PAUSE_AT, step, str(flag), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        )
        try:
            wait_until(
                lambda: flag.exists() or child.poll() is not None, 300, f"the cycle at {step}"
            )
            assert child.poll() is None, out.read_text()[-3000:]
            busy = invoke(*args) if step == "retrain" else None  # a second cycle, here
            child.send_signal(signal.SIGKILL)
            assert child.wait(timeout=60) == -signal.SIGKILL
        finally:
            child.kill()
    return {"busy": busy, "pid": child.pid}


def left_behind(conf: Path, day: dt.date) -> dict[str, Any]:
    """RUNNING runs, pending registrations and the evening's record, as a kill left them."""
    cfg = load_config(conf)
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    pending = client.search_model_versions("tags.`stockpipe.registration` = 'pending'")
    return {
        "day": day,
        "running": sorted(r.info.run_name for r in runs if r.info.status == "RUNNING"),
        "pending": [str(v.version) for v in pending],
        "record": RecordStore(cfg.resolve(cfg.operations.records_dir)).read(day),
    }


def record(month: dict[str, Any], day: dt.date) -> CycleRecord:
    found = RecordStore(month["root"] / "outputs" / "cycles").read(day)
    assert found is not None, f"no record of {day}"
    return found


def _retrained(month: dict[str, Any], day: dt.date) -> bool:
    return record(month, day).steps["retrain"].status in {"done", "reused"}


def test_every_evening_completes_and_exits_0_or_3_as_monitor_and_the_gate_say(
    month: dict[str, Any],
) -> None:
    for i, (day, result) in enumerate(zip(month["days"], month["results"], strict=True), 1):
        rec = record(month, day)
        assert rec.status == "complete", result.output
        assert rec.attempts == (2 if i in KILLS else 1), result.output
        assert result.exit_code == rec.exit_code, result.output
        alerted = "alert" in rec.monitor.values()
        promoted = any(r.promoted for r in rec.retrained)
        assert rec.exit_code == (3 if alerted and not promoted else 0), result.output
        assert list(rec.steps) == ["ingest", "score", "monitor", "retrain", "record"]
    timed = list(enumerate(zip(month["days"], month["seconds"], strict=True), 1))
    plain = [s for i, (d, s) in timed if i not in KILLS and not _retrained(month, d)]
    retrains = [s for i, (d, s) in timed if i not in KILLS and _retrained(month, d)]
    print(  # the numbers the report quotes (pytest -s)
        f"\ncycle seconds in process: median {statistics.median(plain):.2f} over "
        f"{len(plain)} evenings without a retrain (max {max(plain):.2f}), with a retrain "
        f"{', '.join(f'{s:.2f}' for s in retrains)}; all {len(timed)} evenings "
        f"{sum(month['seconds']):.1f}"
    )


def test_one_logged_prediction_per_date_and_horizon_equal_to_a_plain_score(
    month: dict[str, Any],
) -> None:
    cfg = load_config(month["conf"])
    log = SQLiteLog(DuckDBStore(cfg.resolve(cfg.data.warehouse)).log.path).rows()
    assert set(log["source"]) == {"cycle"}  # train logs none; nothing else scored
    # one per evening, none twice: not after the kill during score either
    assert sorted(log["as_of_date"].to_list()) == month["days"]
    assert set(log["horizon"]) == {1} and log.select("as_of_date", "horizon").is_unique().all()
    loader = Loaded(cfg.tracking_uri)
    worst = 0.0
    for row in log.iter_rows(named=True):
        uri = f"models:/{NAME}/{row['model_version']}"
        ports = ScorePorts(
            source=FileSource(month["files"][row["as_of_date"]]),
            store=scratch_warehouse(),
            benchmark=FileSource(SAMPLE / "SPY.csv"),
            loader=loader,
            workspace=scratch_warehouse,
        )
        plain = score(cfg, ports, ParquetSink(month["root"] / "oracle.parquet"), uri).frame
        assert plain["as_of_date"].to_list() == [row["as_of_date"]]
        worst = max(worst, abs(plain["prediction"][0] - row["prediction"]))
    print(f"\nreplay vs score: largest difference {worst:.2e}")
    assert worst <= TOLERANCE


def test_retrains_happen_on_the_days_they_are_due_and_only_then(month: dict[str, Any]) -> None:
    days = month["days"]
    retrained = [i for i, day in enumerate(days, start=1) if _retrained(month, day)]
    # The first champion used data through the cut (day 0): due on day 10, whose retrain
    # (killed once registered, so reused by the rerun) used data through day 10, so due
    # again on day 20. A lost challenger counts as much as a promoted one.
    assert retrained == [EVERY, 2 * EVERY]
    for i, day in enumerate(days, start=1):
        decision = record(month, day).retrain
        assert decision is not None and decision.due == (i in retrained)
        last = 0 if i <= EVERY else EVERY if i <= 2 * EVERY else 2 * EVERY
        assert decision.trading_days == i - last, decision.reason


def test_the_champion_moves_only_when_the_gate_says_so(month: dict[str, Any]) -> None:
    cfg = load_config(month["conf"])
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    champion, versions = (
        "1",
        {str(v.version): v for v in client.search_model_versions(f"name='{NAME}'")},
    )
    for day in month["days"]:
        rec = record(month, day)
        assert rec.champion_before == {"1": champion}
        for outcome in rec.retrained:  # the gate's word, as the registry keeps it
            tags = versions[str(outcome.version)].tags
            assert tags["promoted"] == str(outcome.promoted).lower()
            assert tags["stockpipe.registration"] == "complete"
            champion = outcome.version if outcome.promoted else champion
        assert rec.champion_after == {"1": champion}
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == champion
    assert len(versions) == 3  # the first champion and two retrains, promoted or not
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert "RUNNING" not in {r.info.status for r in runs}
    assert sum(r.info.run_name == "cycle" for r in runs) == DAYS  # none for a killed run


def test_a_second_cycle_exits_5_at_once_while_one_runs(month: dict[str, Any]) -> None:
    busy, holder = month["kills"]["retrain"]["busy"], month["kills"]["retrain"]["pid"]
    assert busy.exit_code == 5, busy.output
    assert f"another cycle of this project is running (pid {holder} " in busy.output
    assert "this one did nothing" in busy.output


def test_a_kill_9_at_score_monitor_or_retrain_then_a_rerun_completes_the_evening(
    month: dict[str, Any],
) -> None:
    kills = month["kills"]
    for step, seen in kills.items():
        assert seen["record"] is not None and seen["record"].status == "running", step
        assert step not in seen["record"].steps  # killed inside it
        done = record(month, seen["day"])
        assert done.status == "complete" and done.attempts == 2 and done.error is None
    # Score: the killed run's rows were committed; the rerun found nothing left to score.
    rescored = record(month, kills["score"]["day"]).steps["score"]
    assert rescored.status == "nothing" and "already logged" in rescored.said
    # Monitor: its run was left RUNNING; the rerun marked it KILLED and monitored again.
    assert kills["monitor"]["running"] == ["monitor"]
    assert record(month, kills["monitor"]["day"]).steps["monitor"].status == "done"
    # Retrain: the train run RUNNING, v2 registered with its intent pending; the rerun's
    # tracker check settled it (the alias moved as the gate had said), so no second retrain.
    assert kills["retrain"]["running"] == ["train"] and kills["retrain"]["pending"] == ["2"]
    rerun = record(month, kills["retrain"]["day"])
    assert rerun.steps["retrain"].status == "reused"
    assert [r.version for r in rerun.retrained] == ["2"]


def test_rerunning_the_last_evening_does_no_work_and_says_so(month: dict[str, Any]) -> None:
    cfg = load_config(month["conf"])
    log_path = DuckDBStore(cfg.resolve(cfg.data.warehouse)).log.path
    before = SQLiteLog(log_path).rows()
    last = month["days"][-1]
    done = invoke("cycle", "--config", str(month["conf"]), "--data", str(month["files"][last]))
    assert done.exit_code == record(month, last).exit_code, done.output
    assert f"cycle {last}: already complete" in done.output
    assert "added no prediction, model version or run" in done.output
    assert SQLiteLog(log_path).rows().equals(before)
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    assert len(client.search_model_versions(f"name='{NAME}'")) == 3
