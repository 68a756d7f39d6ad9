"""`cycle`: one evening's work (ingest, score, monitor, retrain when due, record)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.common import data_given, with_config
from pipeline.errors import EXIT_ALERT

if TYPE_CHECKING:
    from pipeline.operations.cycle import CycleResult
    from pipeline.settings import StockpipeConfig

DATE = click.DateTime(formats=["%Y-%m-%d"])


@click.command()
@with_config("tracking", "seed")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Import this file (the whole history or only the new rows) instead of "
    "operations.yaml's ingest.",
)
@click.option(
    "--as-of",
    type=DATE,
    default=None,
    help="The evening to run for [default: the data's last trading date].",
)
@click.option(
    "--trials", type=int, default=None, help="Optuna trials per candidate if it retrains."
)
def cycle(cfg: StockpipeConfig, as_of: dt.datetime | None) -> None:
    """Run one evening: ingest, score every date since the champion's last prediction,
    monitor, retrain when due, and record it in outputs/cycles/<as-of>.json.

    Safe to repeat (a complete evening is not done twice) and to kill (the rerun completes
    it). Exits 0 when done, 3 when monitor alerted and no better model was promoted, 5 when
    another cycle of this project is running (this one then does nothing).
    """
    from pipeline import bootstrap
    from pipeline.cli.interrupts import stop_at_safe_points
    from pipeline.operations.cycle import CycleOptions, run_cycle

    ports = bootstrap.cycle_ports(cfg, given=data_given())
    options = CycleOptions(as_of=as_of.date() if as_of else None, retrain_guard=stop_at_safe_points)
    result = run_cycle(cfg, ports, options)
    click.echo("\n".join(_lines(result)))
    code = result.record.exit_code or 0
    if code:
        sys.exit(code)


def _lines(result: CycleResult) -> list[str]:
    record = result.record
    if result.repeated:
        return [
            f"cycle {record.as_of}: already complete ({result.path}, finished "
            f"{record.finished_at}): this run did no work and added no prediction, model "
            "version or run",
            _step_line("ingest", result.ingest.status, result.ingest.seconds, result.ingest.said),
            *_verdict(record.exit_code),
        ]
    lines = [f"cycle {record.as_of} (attempt {record.attempts}): record {result.path}"]
    lines += [_step_line(n, s.status, s.seconds, s.said) for n, s in record.steps.items()]
    changes = [
        f"h={h} v{before} -> v{record.champion_after.get(h)}"
        for h, before in record.champion_before.items()
    ]
    lines.append(f"champion: {', '.join(changes)}")
    return [*lines, *_verdict(record.exit_code)]


def _step_line(name: str, status: str, seconds: float, said: str) -> str:
    return f"  {name:<8} {status:<8} {seconds:7.2f}s  {said}"


def _verdict(code: int | None) -> list[str]:
    if code == EXIT_ALERT:
        return ["monitor alerted and no better model was promoted: a person should look (exit 3)"]
    return []
