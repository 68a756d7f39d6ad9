"""The Prefect flow of `stockpipe cycle` (pipeline/flows/cycle_flow.py) on Prefect's local
test harness (a temporary API server on a throwaway SQLite database) and real components.

Two projects trained alike (same data, same seed: the same champion): on the same evening the
flow runs one and `stockpipe cycle` the other, and they must write the same record and the same
prediction rows; a `cycle` after the flow on its project finds the evening done. The run is
named after its as-of date and every step ran as its own completed task. A step that fails is
in the record, and `stockpipe cycle` then completes the evening. The ingest is retried
on a transient failure (a connection error injected by an ingest port that fails twice) and not
on bad input (a DataError fails the run at once).

Skipped without the extra (``pip install -e ".[prefect]"``); see docs/operations.md.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from support import SAMPLE, invoke_ok, make_project, overlay

pytest.importorskip(
    "prefect",
    reason='the Prefect flow needs the optional extra: pip install -e ".[prefect]"',
)

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.testing.utilities import prefect_test_harness

from pipeline import bootstrap
from pipeline.errors import DataError
from pipeline.flows.cycle_flow import cycle_flow
from pipeline.operations.ports import CyclePorts, Ingested
from pipeline.operations.record import CycleRecord, RecordStore

pytestmark = pytest.mark.slow

RIDGE = {
    "name": "ridge",
    "estimator": "ridge",
    "n_trials": 1,
    "space": {"alpha": {"type": "float", "low": 0.1, "high": 1000.0, "log": True}},
}
STEPS = ["ingest", "score", "monitor", "retrain", "record"]


@pytest.fixture(scope="module")
def harness() -> Iterator[float]:
    """Prefect's local test harness for the module; yields how long it took to start."""
    with pytest.MonkeyPatch.context() as env:
        # No usage reports from the test server or client (the server's heartbeat also fights
        # the flow runs over the harness's SQLite file: "database is locked").
        env.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        env.setenv("DO_NOT_TRACK", "1")
        started = time.perf_counter()
        with prefect_test_harness():
            seconds = time.perf_counter() - started
            print(f"prefect_test_harness started in {seconds:.1f}s")
            yield seconds


@pytest.fixture(scope="module")
def evenings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The NVDA history cut at the training date and at each of the three evenings after it."""
    root = tmp_path_factory.mktemp("evenings")
    rows = pl.read_csv(SAMPLE / "NVDA.csv", try_parse_dates=True)
    dates = rows.get_column("date").to_list()
    days = dates[-4:]  # the training cut, then three evenings
    files = {}
    for day in days:
        files[day] = root / str(day) / "NVDA.csv"
        files[day].parent.mkdir()
        rows.filter(pl.col("date") <= day).write_csv(files[day])
    return {"cut": days[0], "days": days[1:], "files": files}


def project(root: Path, evenings: dict[str, Any]) -> Path:
    """A project whose champion was trained on the cut (one ridge trial, a fixed seed); no
    retrain comes due in its evenings, so a flow and a `cycle` do the same work."""
    conf = make_project(root, candidates={"candidates": [RIDGE]})
    overlay(conf, "operations", retrain={"every_days": 1000, "on_alert": False})
    cut = str(evenings["files"][evenings["cut"]])
    invoke_ok("train", "--config", str(conf), "--data", cut, "--trials", "1", "--seed", "7")
    return conf


@pytest.fixture(scope="module")
def flow_project(tmp_path_factory: pytest.TempPathFactory, evenings: dict[str, Any]) -> Path:
    return project(tmp_path_factory.mktemp("flow"), evenings)


@pytest.fixture(scope="module")
def cli_project(tmp_path_factory: pytest.TempPathFactory, evenings: dict[str, Any]) -> Path:
    return project(tmp_path_factory.mktemp("cli"), evenings)


class Flaky:
    """The real ingest port, failing its first ``failures`` validations with ``error``."""

    def __init__(self, inner: Any, error: Exception, failures: int) -> None:
        self.inner, self.error, self.failures, self.calls = inner, error, failures, 0

    def validate(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        self.inner.validate()

    def __call__(self) -> Ingested:
        return self.inner()


def flaky_ports(monkeypatch: pytest.MonkeyPatch, error: Exception, failures: int) -> list[Flaky]:
    """The composition root's cycle ports with a Flaky ingest; the Flaky ones made, to read."""
    made: list[Flaky] = []
    real = bootstrap.cycle_ports

    def cycle_ports(cfg: Any, given: bool) -> CyclePorts:
        ports = real(cfg, given)
        made.append(Flaky(ports.ingest, error, failures))
        return replace(ports, ingest=made[-1])

    monkeypatch.setattr(bootstrap, "cycle_ports", cycle_ports)
    return made


def run_of(state: Any) -> tuple[str, dict[str, list[str]]]:
    """The flow run's name, and each task's run states (one per try) by task name."""
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        name = client.read_flow_run(run_id).name
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
        tasks: dict[str, list[str]] = {}
        for run in runs:
            history = client.read_task_run_states(run.id)
            tasks[run.name.rsplit("-", 1)[0]] = [s.name for s in history]
    return name, tasks


def comparable(record: CycleRecord) -> dict[str, Any]:
    """The record without what differs between two runs of the same work: times, run ids and
    the lines that name them."""
    doc = record.model_dump(mode="json", exclude={"started_at", "finished_at", "run_id"})
    for name, step in doc["steps"].items():
        step.pop("seconds")
        if name == "record":
            step.pop("said")  # names the MLflow run
    return doc


def predictions(conf: Path, day: dt.date) -> pl.DataFrame:
    path = conf.parent / "outputs" / "cycles" / f"{day}.predictions.parquet"
    return pl.read_parquet(path).drop("logged_at", strict=False)


def test_the_flow_runs_the_evening_as_cycle_does_with_one_task_per_step(
    harness: float, flow_project: Path, cli_project: Path, evenings: dict[str, Any]
) -> None:
    day = evenings["days"][0]
    data = str(evenings["files"][day])
    started = time.perf_counter()
    state = cycle_flow(config=str(flow_project), data=data, trials=1, return_state=True)
    print(f"flow run: {time.perf_counter() - started:.1f}s (harness start {harness:.1f}s)")
    assert state.is_completed(), state.message
    record = state.result()
    assert isinstance(record, CycleRecord) and record.as_of == day and record.complete
    name, tasks = run_of(state)
    assert name == str(day)  # asked for no as-of date: renamed once the ingest resolved it
    assert sorted(tasks) == sorted(STEPS)
    assert all(runs[-1] == "Completed" for runs in tasks.values()), tasks

    invoke_ok("cycle", "--config", str(cli_project), "--data", data, "--trials", "1")
    by_cli = RecordStore(cli_project.parent / "outputs" / "cycles").read(day)
    assert by_cli is not None and comparable(by_cli) == comparable(record)
    assert record.steps["score"].counts["rows"] > 0
    assert predictions(flow_project, day).equals(predictions(cli_project, day))

    again = invoke_ok("cycle", "--config", str(flow_project), "--data", data, "--trials", "1")
    assert "already complete" in again.output and "did no work" in again.output


def test_the_ingest_is_retried_on_a_transient_failure(
    harness: float,
    flow_project: Path,
    evenings: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = flaky_ports(monkeypatch, ConnectionError("connection reset by peer"), failures=2)
    day = evenings["days"][1]
    data = str(evenings["files"][day])
    state = cycle_flow(
        config=str(flow_project),
        data=data,
        as_of=day,
        trials=1,
        retry_delay_seconds=0,
        return_state=True,
    )
    assert state.is_completed(), state.message
    assert made[0].calls == 3  # two failures, then the real validation
    name, tasks = run_of(state)
    assert name == str(day)
    assert tasks["ingest"].count("Retrying") == 2 and tasks["ingest"][-1] == "Completed"
    assert state.result().steps["ingest"].status == "done"


def test_bad_input_is_not_retried(
    harness: float,
    flow_project: Path,
    evenings: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = flaky_ports(monkeypatch, DataError("NVDA.csv: unparseable close"), failures=5)
    data = str(evenings["files"][evenings["days"][1]])
    state = cycle_flow(
        config=str(flow_project), data=data, retry_delay_seconds=0, return_state=True
    )
    assert state.is_failed() and "unparseable close" in str(state.message)
    assert made[0].calls == 1
    _, tasks = run_of(state)
    assert "Retrying" not in tasks["ingest"] and tasks["ingest"][-1] == "Failed"


def test_a_failed_step_is_in_the_record_and_cycle_completes_the_evening(
    harness: float,
    flow_project: Path,
    evenings: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = bootstrap.cycle_ports

    def broken(*args: Any) -> Any:
        raise RuntimeError("score broke")

    def broken_score(cfg: Any, given: bool) -> CyclePorts:
        ports = real(cfg, given)

        def steps(as_of: dt.date) -> Any:
            built = ports.steps(as_of)
            built.score = broken  # the real steps, but the replay fails
            return built

        return replace(ports, steps=steps)

    monkeypatch.setattr(bootstrap, "cycle_ports", broken_score)
    day = evenings["days"][2]
    data = str(evenings["files"][day])
    state = cycle_flow(config=str(flow_project), data=data, trials=1, return_state=True)
    assert state.is_failed() and "score broke" in str(state.message)
    _, tasks = run_of(state)
    assert {name: runs[-1] for name, runs in tasks.items()} == {
        "ingest": "Completed",
        "score": "Failed",
    }
    records = RecordStore(flow_project.parent / "outputs" / "cycles")
    failed = records.read(day)
    assert failed is not None and failed.status == "failed" and failed.error == "score broke"

    monkeypatch.undo()
    invoke_ok("cycle", "--config", str(flow_project), "--data", data, "--trials", "1")
    done = records.read(day)
    assert done is not None and done.complete and done.attempts == 2
