"""The `cycle` use case (pipeline/operations/cycle.py) on hand-written fakes of its ports.

One shared ``World`` is the state the real ports read (the data's trading dates, the
registry's versions and champion, the prediction log's last scored date per version); the
fakes change it as the real steps would. The records and the lock are the real ones, in
tmp_path. The end-to-end behaviour on real components is in tests/integration and tests/e2e.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fakes import FakeTracker
from support import make_project, overlay

from pipeline.config import load_config
from pipeline.errors import EXIT_ALERT, EXIT_BUSY, DataError, exit_code_of
from pipeline.operations.cycle import CycleOptions, CycleResult, NoChampionError, run_cycle
from pipeline.operations.lock import CycleBusyError, cycle_lock
from pipeline.operations.ports import Champion, CyclePorts, Ingested, Scored, Watched
from pipeline.operations.record import RecordStore, Retrained
from pipeline.operations.schedule import LastRetrain
from pipeline.settings import StockpipeConfig

DAYS = tuple(dt.date(2026, 8, 3) + dt.timedelta(days=i) for i in range(30) if i % 7 < 5)
NAME = "StocksPredictionModel"


@dataclass
class World:
    """What the registry, the prediction log and the data hold; ``today`` is the data's end."""

    today: int = 1  # index into DAYS: the data ends on DAYS[today]
    champion: str | None = "1"
    trained: dict[str, dt.date] = field(default_factory=lambda: {"1": DAYS[0]})
    scored: dict[str, dt.date] = field(default_factory=dict)
    status: str = "ok"  # what monitor says
    promote: bool = False  # what the gate says
    calls: list[tuple[object, ...]] = field(default_factory=list)
    fail_in: str | None = None  # a step that raises (a kill, a crash)
    killed_after_registering: bool = False  # the retrain registers its version, then dies

    @property
    def dates(self) -> tuple[dt.date, ...]:
        return DAYS[: self.today + 1]


class Steps:
    def __init__(self, world: World, as_of: dt.date) -> None:
        self.world, self.as_of = world, as_of

    def _maybe_fail(self, step: str) -> None:
        if self.world.fail_in == step:
            raise KeyboardInterrupt if step == "retrain" else RuntimeError(f"{step} broke")

    def score(self, start: dt.date, end: dt.date, model_uri: str) -> Scored:
        self.world.calls.append(("score", start, end, model_uri))
        version = model_uri.rsplit("/", 1)[1]
        self.world.scored[version] = end
        self._maybe_fail("score")
        n = sum(start <= d <= end for d in self.world.dates)
        return Scored(rows=n, dates=n)

    def monitor(self) -> list[Watched]:
        self.world.calls.append(("monitor", self.as_of))
        self._maybe_fail("monitor")
        return [Watched(1, self.world.champion, self.world.status)]

    def retrain(self) -> list[Retrained]:
        self.world.calls.append(("retrain", self.as_of))
        self._maybe_fail("retrain")
        version = str(len(self.world.trained) + 1)
        self.world.trained[version] = self.as_of
        if self.world.promote:
            self.world.champion = version
        if self.world.killed_after_registering:
            raise KeyboardInterrupt
        return [Retrained(horizon=1, version=version, promoted=self.world.promote, reason="gate")]


class Ingest:
    def __init__(self, world: World) -> None:
        self.world = world

    def validate(self) -> None:
        if self.world.fail_in == "ingest":
            raise DataError("NVDA.csv: column 'close' has 1 unparseable value(s)")

    def __call__(self) -> Ingested:
        self.world.calls.append(("ingest",))
        return Ingested(said="file", dates=self.world.dates, new_dates=1)


class Models:
    def __init__(self, world: World) -> None:
        self.world = world

    def champions(self) -> dict[int, Champion]:
        return {1: Champion(1, NAME, self.world.champion)}

    def last_retrain(self) -> LastRetrain:
        newest = max(self.world.trained, key=int)
        return LastRetrain(newest, self.world.trained[newest])

    def trained_through(self, champion: Champion) -> dt.date | None:
        return self.world.trained.get(champion.version or "")


class Scores:
    def __init__(self, world: World) -> None:
        self.world = world

    def last_scored(self, champion: Champion) -> dt.date | None:
        return self.world.scored.get(champion.version or "")


@dataclass
class Project:
    cfg: StockpipeConfig
    world: World
    tracker: FakeTracker
    records: RecordStore
    lock: Path

    def ports(self) -> CyclePorts:
        return CyclePorts(
            lock=lambda: cycle_lock(self.lock),
            tracker=self.tracker,
            ingest=Ingest(self.world),
            steps=lambda as_of: Steps(self.world, as_of),
            models=Models(self.world),
            scored=Scores(self.world),
            records=self.records,
        )

    def run(self, today: int | None = None) -> CycleResult:
        if today is not None:
            self.world.today = today
        return run_cycle(self.cfg, self.ports(), CycleOptions())

    def called(self, step: str) -> list[tuple[object, ...]]:
        return [c for c in self.world.calls if c[0] == step]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    conf = make_project(tmp_path)
    overlay(conf, "operations", retrain={"every_days": 5})
    folder = tmp_path / "cycles"
    return Project(load_config(conf), World(), FakeTracker(), RecordStore(folder), folder / ".lock")


def test_an_evening_scores_since_the_champions_training_data_and_records_every_step(
    project: Project,
) -> None:
    result = project.run(today=1)
    record = result.record
    assert not result.repeated and record.status == "complete" and record.exit_code == 0
    assert project.called("score") == [("score", DAYS[1], DAYS[1], f"models:/{NAME}/1")]
    assert list(record.steps) == ["ingest", "score", "monitor", "retrain", "record"]
    assert record.steps["score"].counts == {"rows": 1, "dates": 1}
    assert record.steps["retrain"].status == "skipped"
    assert record.retrain is not None and record.retrain.trading_days == 1
    assert record.champion_before == record.champion_after == {"1": "1"}
    (run,) = project.tracker.runs
    assert run.name == "cycle" and run.tags["cycle"] == str(DAYS[1])
    assert record.run_id == run.run_id
    assert project.records.read(DAYS[1]) == record


def test_a_second_run_for_the_same_evening_does_no_work_and_says_so(project: Project) -> None:
    first = project.run(today=1)
    calls = len(project.world.calls)
    again = project.run(today=1)
    assert again.repeated and again.record == first.record
    assert project.world.calls[calls:] == [("ingest",)]  # the data is read, nothing else
    assert len(project.tracker.runs) == 1


def test_missed_evenings_are_backfilled_from_the_last_logged_prediction(project: Project) -> None:
    project.run(today=1)
    project.run(today=4)  # the evenings of DAYS[2] and DAYS[3] never ran
    assert project.called("score")[-1] == ("score", DAYS[2], DAYS[4], f"models:/{NAME}/1")
    nothing_new = project.run(today=4)
    assert nothing_new.repeated


def test_retrains_come_every_days_trading_days_and_only_then(project: Project) -> None:
    for day in range(1, 12):
        project.run(today=day)
    # v1 was trained through DAYS[0]: due at DAYS[5]; that retrain used data through
    # DAYS[5], so the next is due at DAYS[10].
    assert project.called("retrain") == [("retrain", DAYS[5]), ("retrain", DAYS[10])]
    assert project.world.champion == "1"  # the gate said no both times


def test_an_alert_retrains_once_and_exits_3_while_no_better_model_is_promoted(
    project: Project,
) -> None:
    project.world.status = "alert"
    first = project.run(today=1)
    assert project.called("retrain") == [("retrain", DAYS[1])]
    assert first.record.retrain is not None and first.record.retrain.on_alert
    assert first.record.exit_code == EXIT_ALERT
    second = project.run(today=2)  # still alerting, the challenger lost: no retrain tonight
    assert len(project.called("retrain")) == 1
    assert second.record.exit_code == EXIT_ALERT
    assert second.record.retrain is not None and "already answered" in second.record.retrain.reason
    project.world.status, project.world.promote = "ok", True
    project.run(today=3)
    project.world.status = "alert"  # a new episode: a retrain, and a better model promoted
    fourth = project.run(today=4)
    assert project.called("retrain")[-1] == ("retrain", DAYS[4])
    assert fourth.record.exit_code == 0
    assert fourth.record.champion_after == {"1": "3"} != fourth.record.champion_before


def test_a_run_cut_short_is_completed_by_the_next_without_doing_twice_what_it_did(
    project: Project,
) -> None:
    project.world.fail_in = "monitor"
    with pytest.raises(RuntimeError, match="monitor broke"):
        project.run(today=1)
    cut = project.records.read(DAYS[1])
    assert cut is not None and cut.status == "failed" and cut.error == "monitor broke"
    assert cut.steps["score"].status == "done" and "monitor" not in cut.steps
    project.world.fail_in = None
    done = project.run(today=1).record
    assert done.status == "complete" and done.attempts == 2 and done.error is None
    assert len(project.called("score")) == 1  # the log held the evening's rows already
    assert done.steps["score"].status == "reused"
    assert done.steps["monitor"].status == "done"


def test_a_signal_during_the_retrain_is_recorded_and_the_rerun_retrains(project: Project) -> None:
    project.world.fail_in = "retrain"
    with pytest.raises(KeyboardInterrupt):
        project.run(today=5)
    cut = project.records.read(DAYS[5])
    assert cut is not None and cut.status == "interrupted"
    assert cut.steps["monitor"].status == "done"
    project.world.fail_in = None
    done = project.run(today=5).record
    assert done.status == "complete" and done.steps["monitor"].status == "reused"
    assert done.attempts == 2
    assert project.called("monitor") == [("monitor", DAYS[5])]  # not run twice
    assert [v.version for v in done.retrained] == ["2"]


def test_without_a_champion_the_cycle_refuses_before_writing_a_record(project: Project) -> None:
    project.world.champion = None
    with pytest.raises(NoChampionError, match="run `stockpipe train` once") as err:
        project.run(today=1)
    assert exit_code_of(err.value) == 2
    assert project.records.read(DAYS[1]) is None and not project.called("score")


def test_a_second_cycle_of_the_project_exits_busy_at_once_doing_nothing(project: Project) -> None:
    with cycle_lock(project.lock), pytest.raises(CycleBusyError) as err:
        project.run(today=1)
    assert exit_code_of(err.value) == EXIT_BUSY == 5
    assert f"pid {os.getpid()}" in str(err.value)
    assert project.world.calls == [] and project.records.read(DAYS[1]) is None
    assert project.run(today=1).record.status == "complete"  # released with its holder


def test_a_retrain_killed_after_registering_stands_and_the_rerun_does_not_retrain_again(
    project: Project,
) -> None:
    project.world.killed_after_registering = project.world.promote = True
    with pytest.raises(KeyboardInterrupt):
        project.run(today=5)  # due: v1 used data through DAYS[0]
    project.world.killed_after_registering = False
    done = project.run(today=5).record
    assert project.called("retrain") == [("retrain", DAYS[5])]  # once, by the killed run
    assert done.steps["retrain"].status == "reused"
    assert done.retrain is not None and done.retrain.due  # why it retrained, as decided then
    assert [(r.version, r.promoted) for r in done.retrained] == [("2", True)]
    assert done.champion_before == {"1": "1"} and done.champion_after == {"1": "2"}


def test_a_bad_input_stops_the_cycle_before_the_tracker_or_a_record(project: Project) -> None:
    project.world.fail_in = "ingest"
    project.tracker.reachable = False  # never reached: the file is refused first
    with pytest.raises(DataError, match="unparseable") as err:
        project.run(today=1)
    assert exit_code_of(err.value) == 2
    assert project.world.calls == [] and project.records.read(DAYS[1]) is None
