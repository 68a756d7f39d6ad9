"""The `cycle` use case: one evening's work, in order, safe to repeat and to kill.

1. **Ingest** the evening's prices (a file, the configured file, or a download).
2. **Score** every champion on each trading date since its last logged prediction, up to the
   as-of date (a missed evening is backfilled through replay), logged with source ``cycle``.
3. **Monitor** every champion, as `stockpipe monitor` does.
4. **Retrain** when due (:func:`pipeline.operations.schedule.decide_retrain`), through the
   promotion gate as in `train`.
5. **Record** the evening: ``<records_dir>/<as-of>.json`` and one MLflow run named ``cycle``.

Where each decision's state lives, so that a rerun decides what the killed run would have:
the lock is a kernel ``flock`` (gone with its process); what was scored is the prediction log
(idempotent on its key, written in one transaction per replay); what the last retrain used is
the registry's newest version (its lineage: snapshot ids, whose manifest entries carry the
last date); which evenings alerted, and whether tonight's monitor already ran, are the cycle
records. An orphan RUNNING run or a half-registered version left by a kill is settled by
``tracker.check()`` (``pipeline.tracking.orphans``, registration intents) before any work.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

from pipeline.errors import StockpipeError
from pipeline.operations.evening import Evening, run_steps
from pipeline.operations.ports import Champion, CyclePorts, Ingest, Ingested
from pipeline.operations.record import CycleRecord, Journal, Step, now
from pipeline.operations.schedule import resolve_as_of
from pipeline.settings import StockpipeConfig


class NoChampionError(StockpipeError):
    """The cycle keeps a champion up to date; it does not make the first one (exit 2)."""


@dataclass(frozen=True)
class CycleOptions:
    """Choices of one run that are not configuration."""

    as_of: dt.date | None = None  # the evening to run for; default: the data's last date
    # The retrain runs inside this guard: the CLI passes `stop_at_safe_points`, so a signal
    # stops the competition between fits, as in `train`, not inside one.
    retrain_guard: Callable[[], AbstractContextManager[object]] = field(default=nullcontext)


@dataclass(frozen=True)
class CycleResult:
    """The evening's record (at ``path``); ``repeated``: it was complete already, so this run
    did no work. ``ingest`` is this run's own ingest step (in the record unless repeated)."""

    record: CycleRecord
    repeated: bool
    ingest: Step
    path: str


def run_cycle(
    cfg: StockpipeConfig, ports: CyclePorts, options: CycleOptions | None = None
) -> CycleResult:
    """Run one evening (see the module docstring); CycleBusyError at once if another cycle of
    the project runs. A complete record for the as-of date means the evening is done: the
    rerun adds no prediction, no version and no run, and says so (``repeated``).

    The Prefect flow (``pipeline.flows.cycle_flow``) runs these same calls, each step a task.
    """
    options = options or CycleOptions()
    with ports.lock():
        ingested, ingest = ingest_step(ports)
        opened = open_evening(cfg, ports, options, ingested, ingest)
        if isinstance(opened, CycleResult):
            return opened
        with recorded(opened.journal):
            run_steps(opened)
        return result(opened)


def ingest_step(ports: CyclePorts) -> tuple[Ingested, Step]:
    """Validate the input, settle what a killed run left, then ingest; timed as one step.

    Safe to call again after it failed (an orchestrator's retry): a validated input is kept
    only once read whole, snapshots are content-addressed and the upsert is idempotent.
    """
    started = time.perf_counter()
    ports.ingest.validate()  # a bad file stops here: nothing written, no store reached
    ports.tracker.check()  # reaps orphan runs and settles registrations a kill left
    return _timed_ingest(ports.ingest, started)


def open_evening(
    cfg: StockpipeConfig,
    ports: CyclePorts,
    options: CycleOptions,
    ingested: Ingested,
    ingest: Step,
) -> Evening | CycleResult:
    """The evening's record begun (or continued) for its steps; or, when the record of the
    as-of date is complete already, the result of a run that does no work."""
    as_of = resolve_as_of(ingested.dates, options.as_of)
    earlier = ports.records.read(as_of)
    if earlier is not None and earlier.complete:
        return CycleResult(earlier, True, ingest, str(ports.records.path(as_of)))
    champions = ports.models.champions()
    _require_champion(cfg, champions)
    journal = Journal(ports.records, _begin(earlier, as_of, ingest, champions))
    return Evening(cfg, ports, options.retrain_guard, journal, ingested, champions)


@contextmanager
def recorded(journal: Journal) -> Iterator[None]:
    """Whatever stops the steps, a signal too, is written into the record (failed or
    interrupted) before it goes on up: the rerun completes the evening."""
    try:
        yield
    except BaseException as exc:
        journal.fail(exc)
        raise


def result(evening: Evening) -> CycleResult:
    """The result of an evening whose steps all ran."""
    record = evening.journal.record
    path = str(evening.ports.records.path(record.as_of))
    return CycleResult(record, False, record.steps["ingest"], path)


def _timed_ingest(ingest: Ingest, started: float) -> tuple[Ingested, Step]:
    ingested = ingest()
    fresh = ingested.new_dates > 0 or ingested.counts.get("snapshots_new", 0) > 0
    step = Step(
        status="done" if fresh else "nothing",
        seconds=round(time.perf_counter() - started, 3),
        said=ingested.said,
        counts={"new_dates": ingested.new_dates, **ingested.counts},
    )
    return ingested, step


def _require_champion(cfg: StockpipeConfig, champions: dict[int, Champion]) -> None:
    primary = champions[cfg.model.target.horizon]
    if primary.version is None:
        raise NoChampionError(
            f"{primary.name} has no @{cfg.tracking.champion_alias} yet: run `stockpipe train` "
            "once; the cycle keeps a champion up to date, it does not make the first one"
        )


def _begin(
    earlier: CycleRecord | None, as_of: dt.date, ingest: Step, champions: dict[int, Champion]
) -> CycleRecord:
    """A new record, or the one a killed or failed run of this evening left, continued."""
    before = {str(h): c.version for h, c in champions.items()}
    if earlier is None:
        return CycleRecord(
            as_of=as_of,
            status="running",
            started_at=now(),
            steps={"ingest": ingest},
            champion_before=before,
        )
    return earlier.model_copy(
        update={
            "status": "running",
            "attempts": earlier.attempts + 1,
            "error": None,
            "finished_at": None,
            "steps": {**earlier.steps, "ingest": ingest},
            "champion_before": earlier.champion_before or before,
        }
    )
