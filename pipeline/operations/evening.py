"""The cycle's steps once the evening's record has begun: score, monitor, retrain, record.

Each step is written into the record as it ends (``Journal``), so a rerun after a kill finds
what was done. A step's outcome is a :class:`~pipeline.operations.record.Step`: its status,
its time, one line saying what it did and its counts. Each step is a function of the
:class:`Evening` (``EVENING_STEPS``), so that `stockpipe cycle` and the Prefect flow
(``pipeline.flows.cycle_flow``, one task per step) run the very same code.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import cached_property

from pipeline.errors import EXIT_ALERT
from pipeline.operations.ports import Champion, CyclePorts, Ingested, Steps
from pipeline.operations.record import CycleRecord, Journal, Retrained, Step, now
from pipeline.operations.schedule import (
    LastRetrain,
    RetrainDecision,
    alert_since,
    dates_to_score,
    decide_retrain,
)
from pipeline.settings import StockpipeConfig

Guard = Callable[[], AbstractContextManager[object]]


class Evening:
    """One evening once its record has begun: what its steps read, and the journal they
    write. A plain class (not a dataclass): an orchestrator passing it to a task leaves it
    whole instead of walking its fields."""

    def __init__(
        self,
        cfg: StockpipeConfig,
        ports: CyclePorts,
        guard: Guard,
        journal: Journal,
        data: Ingested,
        champions: dict[int, Champion],
    ) -> None:
        self.cfg, self.ports, self.guard, self.journal = cfg, ports, guard, journal
        self.data, self.champions = data, champions

    @property
    def as_of(self) -> dt.date:
        return self.journal.record.as_of

    @cached_property
    def steps(self) -> Steps:
        """Built by the first step that needs them, so that a failure building them lands in
        the record like any step's."""
        return self.ports.steps(self.as_of)


def score_step(evening: Evening) -> Step:
    """Score every champion since its last logged prediction; a rerun's nothing-to-do keeps
    the work the killed run did."""
    e = evening
    scored = score(e.ports, e.steps, e.champions, e.data.dates, e.as_of)
    e.journal.step("score", _keep_done(e.journal.record, "score", scored))
    return e.journal.record.steps["score"]


def monitor_step(evening: Evening) -> Step:
    """Monitor every champion, unless an earlier run of this evening already did."""
    earlier = _finished_monitor(evening.journal.record)
    if earlier is not None:
        evening.journal.step("monitor", earlier.model_copy(update={"status": "reused"}))
    else:
        monitor(evening.steps, evening.journal)
    return evening.journal.record.steps["monitor"]


def retrain_step(evening: Evening) -> Step:
    """Retrain when due (the decision lands in the record first)."""
    e = evening
    retrain(e.cfg, e.ports, e.steps, e.guard, e.journal, e.data.dates)
    return e.journal.record.steps["retrain"]


def record_step(evening: Evening) -> Step:
    """The champions after, the exit code, the MLflow run; the record marked complete."""
    after = {str(h): c.version for h, c in evening.ports.models.champions().items()}
    evening.journal.update(champion_after=after, exit_code=exit_code(evening.journal.record))
    finish(evening.ports, evening.journal)
    return evening.journal.record.steps["record"]


# In order: each reads what the one before it wrote into the record.
EVENING_STEPS: tuple[Callable[[Evening], Step], ...] = (
    score_step,
    monitor_step,
    retrain_step,
    record_step,
)


def run_steps(evening: Evening) -> None:
    """Score, monitor, retrain when due, then record; each step lands in the journal."""
    for step in EVENING_STEPS:
        step(evening)


def score(
    ports: CyclePorts,
    steps: Steps,
    champions: dict[int, Champion],
    dates: tuple[dt.date, ...],
    as_of: dt.date,
) -> Step:
    """Each champion over the trading dates since its last logged prediction (never scored:
    since the end of its training data), up to ``as_of``."""
    started = time.perf_counter()
    rows = count = 0
    said = []
    for h, champ in sorted(champions.items()):
        if champ.version is None:
            said.append(f"h={h}: no champion, nothing scored")
            continue
        last = ports.scored.last_scored(champ)
        after = last or ports.models.trained_through(champ)
        todo = dates_to_score(dates, after, as_of)
        if not todo:
            why = "already logged" if last and last >= as_of else "no trading date after it"
            said.append(f"h={h} v{champ.version}: {why} ({after}), nothing to score")
            continue
        result = steps.score(todo[0], todo[-1], champ.uri)
        rows, count = rows + result.rows, count + result.dates
        said.append(f"h={h} v{champ.version}: {result.dates} date(s) {todo[0]}..{todo[-1]}")
    status = "done" if rows else "nothing"
    counts = {"rows": rows, "dates": count}
    return Step(status=status, seconds=_since(started), said="; ".join(said), counts=counts)


def _keep_done(record: CycleRecord, name: str, step: Step) -> Step:
    """``step``, or the earlier run's own, marked reused, when it did the work this one finds
    done (a rerun after a kill: the log already holds its rows)."""
    earlier = record.steps.get(name)
    if step.status == "nothing" and earlier is not None and earlier.status in {"done", "reused"}:
        return earlier.model_copy(update={"status": "reused"})
    return step


def _finished_monitor(record: CycleRecord) -> Step | None:
    """The monitor step an earlier run of this evening finished, if any: it stands (monitor
    judged the evening's champion, before any retrain), so a rerun does not run it again."""
    done = record.steps.get("monitor")
    if done is None or record.alerted is None or done.status not in {"done", "reused"}:
        return None
    return done


def monitor(steps: Steps, journal: Journal) -> None:
    """`stockpipe monitor` of every champion; the record keeps each horizon's status."""
    started = time.perf_counter()
    watched = steps.monitor()
    statuses = {str(w.horizon): w.status for w in watched}
    alerted = any(w.status == "alert" for w in watched)
    said = "; ".join(f"h={w.horizon} v{w.version}: {w.status}" for w in watched)
    alerts = sum(w.status == "alert" for w in watched)
    step = Step(status="done", seconds=_since(started), said=said, counts={"alerts": alerts})
    steps_done = {**journal.record.steps, "monitor": step}
    journal.update(monitor=statuses, alerted=alerted, steps=steps_done)


def retrain(
    cfg: StockpipeConfig,
    ports: CyclePorts,
    steps: Steps,
    guard: Guard,
    journal: Journal,
    dates: tuple[dt.date, ...],
) -> None:
    """Retrain when due; the decision is recorded before the work starts."""
    record = journal.record
    alerted = bool(record.alerted)
    start = alert_since(ports.records.alert_history(), record.as_of) if alerted else None
    last = ports.models.last_retrain()
    decision = decide_retrain(cfg.operations.retrain, dates, record.as_of, last, alerted, start)
    earlier = record.retrain  # an earlier run of this evening decided before it was cut short
    if earlier is not None and _registered_before(decision, earlier, last, record.as_of):
        _retrained_before(cfg, ports, journal, earlier, last.version)
        return
    journal.update(retrain=decision)
    if not decision.due:
        journal.step("retrain", Step(status="skipped", seconds=0.0, said=decision.reason))
        return
    started = time.perf_counter()
    with guard():  # a signal stops the competition at its next safe point, as in `train`
        outcomes = steps.retrain()
    said = "; ".join(
        f"h={o.horizon} v{o.version}: {'promoted' if o.promoted else 'not promoted'} ({o.reason})"
        for o in outcomes
    )
    counts = {
        "versions": sum(o.version is not None for o in outcomes),
        "promoted": sum(o.promoted for o in outcomes),
    }
    step = Step(status="done", seconds=_since(started), said=said, counts=counts)
    journal.update(retrained=outcomes, steps={**journal.record.steps, "retrain": step})


def _registered_before(
    now_: RetrainDecision, earlier: RetrainDecision, last: LastRetrain, as_of: dt.date
) -> bool:
    """Whether a retrain an earlier run of this evening decided on registered its version
    before that run was cut short: due then, not due now, as the newest version has this
    evening's data."""
    ends = last.through is not None and last.through >= as_of
    return earlier.due and not now_.due and ends


def _retrained_before(
    cfg: StockpipeConfig,
    ports: CyclePorts,
    journal: Journal,
    earlier: RetrainDecision,
    version: str | None,
) -> None:
    """An earlier run of this evening was killed after its retrain registered ``version``
    (``tracker.check()`` has since settled that registration: its alias moved, or it was
    abandoned): that retrain stands, as the earlier run's decision said why it ran."""
    primary = cfg.model.target.horizon
    promoted = ports.models.champions()[primary].version == version
    said = (
        f"h={primary} v{version}: {'promoted' if promoted else 'not promoted'} (registered by "
        "an earlier run of this evening before it was cut short; its registration settled)"
    )
    outcome = Retrained(horizon=primary, version=version, promoted=promoted, reason=said)
    step = Step(status="reused", seconds=0.0, said=said, counts={"promoted": int(promoted)})
    journal.update(
        retrain=earlier, retrained=[outcome], steps={**journal.record.steps, "retrain": step}
    )


def exit_code(record: CycleRecord) -> int:
    """3 when a horizon's monitor alerted and no better model of it was promoted tonight (a
    person should look); 0 otherwise."""
    alerted = {h for h, status in record.monitor.items() if status == "alert"}
    promoted = {str(o.horizon) for o in record.retrained if o.promoted}
    return EXIT_ALERT if alerted - promoted else 0


def finish(ports: CyclePorts, journal: Journal) -> None:
    """One MLflow run named ``cycle`` with the record, then the record marked complete.

    The run is opened only now: `train` and `monitor` open top-level runs of their own, which
    MLflow refuses while another run is active in the process. A kill inside this step leaves
    a RUNNING run for the next ``tracker.check()`` to mark KILLED and a record still running,
    so the rerun logs the evening again.
    """
    started = time.perf_counter()
    with ports.tracker.start_run("cycle") as run:
        final = journal.record.model_copy(
            update={"status": "complete", "finished_at": now(), "run_id": run.run_id}
        )
        said = f"MLflow run {run.run_id} (cycle); exit code {final.exit_code}"
        step = Step(status="done", seconds=_since(started), said=said)
        final = final.model_copy(update={"steps": {**final.steps, "record": step}})
        run.set_tags(_tags(final))
        run.log_metrics(_metrics(final))
        run.log_text(json.dumps(final.model_dump(mode="json"), indent=2), "cycle/record.json")
    journal.update(**{k: getattr(final, k) for k in ("status", "finished_at", "run_id", "steps")})


def _tags(record: CycleRecord) -> dict[str, str]:
    decision = record.retrain
    return {
        "cycle": record.as_of.isoformat(),
        "cycle.attempts": str(record.attempts),
        "cycle.exit_code": str(record.exit_code),
        "cycle.alerted": str(bool(record.alerted)).lower(),
        "cycle.retrained": str(bool(record.retrained)).lower(),
        "cycle.retrain_reason": decision.reason[:5000] if decision else "",
        "cycle.champion_before": json.dumps(record.champion_before, sort_keys=True),
        "cycle.champion_after": json.dumps(record.champion_after, sort_keys=True),
    }


def _metrics(record: CycleRecord) -> dict[str, float]:
    out = {f"{name}_seconds": step.seconds for name, step in record.steps.items()}
    for name, step in record.steps.items():
        out |= {f"{name}_{key}": float(value) for key, value in step.counts.items()}
    return out


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
