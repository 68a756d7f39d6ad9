"""`stockpipe cycle` as a Prefect flow: one task per step, each the cycle's own step function.

Needs the extra (``pip install -e ".[prefect]"``); nothing in the CLI or the core imports this
module, so `stockpipe cycle` never needs Prefect. The tasks *are* the functions
``run_cycle`` calls (``ingest_step`` and ``EVENING_STEPS``, wrapped by ``task``), run in the
same order under the same project lock, held for the flow's whole run, writing the same record:
an orchestration of the use case, not a second implementation of it. A failing step is
written into the record (``recorded``) as in `cycle`, so a rerun, by either, completes the
evening, and a complete evening is not done twice by either.

What Prefect adds: retries of the ingest on failures that may pass
(:func:`pipeline.flows.transient.is_transient`; bad input fails at once), a run named after
its as-of date, its UI and schedules (docs/operations.md, "Prefect"). The run's final state
says what `cycle`'s exit code says: Completed (0), Failed (3: monitor alerted and no better
model was promoted; or an error), Cancelled (5: another cycle of the project holds the lock).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed, State

from pipeline.cli.interrupts import stop_at_safe_points
from pipeline.errors import EXIT_ALERT
from pipeline.flows.transient import is_transient
from pipeline.operations.cycle import (
    CycleOptions,
    CycleResult,
    ingest_step,
    open_evening,
    recorded,
    result,
)
from pipeline.operations.evening import EVENING_STEPS
from pipeline.operations.lock import CycleBusyError
from pipeline.operations.ports import CyclePorts
from pipeline.settings import StockpipeConfig

INGEST_RETRIES = 3
RETRY_DELAY_SECONDS = 60.0


def _retry_if_transient(task: Any, task_run: Any, state: State[Any]) -> bool:
    """Prefect's retry condition: the engine hands the failure in ``state.data``."""
    return isinstance(state.data, BaseException) and is_transient(state.data)


# NO_CACHE, no persisted results: the record is the cycle's memory of what was done, so Prefect
# must neither skip a step from a cache of its own nor keep a second copy of its outcome.
_OWN: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
ingest = task(name="ingest", retry_condition_fn=_retry_if_transient, **_OWN)(ingest_step)
STEP_TASKS = tuple(
    task(name=step.__name__.removesuffix("_step"), **_OWN)(step) for step in EVENING_STEPS
)


def _run_name() -> str:
    """The as-of date asked for; without one, a placeholder until the ingest has resolved it
    (the run is then renamed, see ``_rename``)."""
    asked = flow_run.parameters.get("as_of")
    return str(asked) if asked else "as-of pending ingest"


@flow(name="stockpipe-cycle", flow_run_name=_run_name)
def cycle_flow(
    config: str = "conf",
    env: str | None = None,
    data: str | None = None,
    as_of: dt.date | None = None,
    trials: int | None = None,
    tracking_uri: str | None = None,
    ingest_retries: int = INGEST_RETRIES,
    retry_delay_seconds: float = RETRY_DELAY_SECONDS,
) -> State[Any]:
    """One evening of `stockpipe cycle --config CONFIG [--env] [--data] [--as-of] [--trials]
    [--tracking-uri]`; the ingest is tried up to ``1 + ingest_retries`` times on transient
    failures, ``retry_delay_seconds`` apart."""
    from pipeline import bootstrap  # the composition root, as the CLI builds it

    cfg = _config(config, env, data, trials, tracking_uri)
    ports = bootstrap.cycle_ports(cfg, given=data is not None)
    options = CycleOptions(as_of=as_of, retrain_guard=stop_at_safe_points)
    retried = ingest.with_options(retries=ingest_retries, retry_delay_seconds=retry_delay_seconds)
    try:
        with ports.lock():  # held across every task: one cycle per project, flow or CLI
            done = _evening(cfg, ports, options, retried)
    except CycleBusyError as exc:
        return Cancelled(message=str(exc))
    return _final_state(done)


def _config(
    config: str, env: str | None, data: str | None, trials: int | None, uri: str | None
) -> StockpipeConfig:
    """The configuration with the CLI's flags applied, as `cycle`'s options apply them."""
    from pipeline.config import apply_overrides, load_config

    given = Path(data) if data is not None else None  # relative to the working directory
    return apply_overrides(load_config(config, env), data=given, trials=trials, tracking_uri=uri)


def _evening(
    cfg: StockpipeConfig, ports: CyclePorts, options: CycleOptions, ingest_task: Any
) -> CycleResult:
    """``run_cycle``'s body, each step a task; the caller holds the lock."""
    ingested, step = ingest_task(ports)
    opened = open_evening(cfg, ports, options, ingested, step)
    _rename(opened.record.as_of if isinstance(opened, CycleResult) else opened.as_of)
    if isinstance(opened, CycleResult):
        return opened  # the evening was complete already: no step runs again
    with recorded(opened.journal):
        for step_task in STEP_TASKS:
            step_task(opened)
    return result(opened)


def _rename(as_of: dt.date) -> None:
    """Name the run after the evening it ran for, once the ingest has said which."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow_run.name == str(as_of):
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_name(context.flow_run.id, name=str(as_of))
    context.flow_run.name = str(as_of)


def _final_state(done: CycleResult) -> State[Any]:
    """The run's state, carrying the record, with `cycle`'s exit code as its verdict."""
    record = done.record
    what = "already complete: no work done" if done.repeated else f"record {done.path}"
    if record.exit_code == EXIT_ALERT:
        message = "monitor alerted and no better model was promoted: a person should look"
        return Failed(message=f"cycle {record.as_of}: {message} ({what})", data=record)
    return Completed(message=f"cycle {record.as_of}: {what}", data=record)
