"""`monitor`: drift, live performance and service health of the served model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.common import data_given, model_uri_option, num, with_config
from pipeline.errors import EXIT_ALERT

if TYPE_CHECKING:
    from pipeline.monitoring.report import HealthSection, MonitorReport
    from pipeline.settings import StockpipeConfig


ALERT_LINES = 8  # drift lines printed; monitor.json has them all


@click.command()
@with_config("data", "tracking")
@model_uri_option
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where monitor.json and dashboard.png go [default: monitoring.output_dir].",
)
@click.option(
    "--window", type=int, default=None, help="Recent trading days [default: monitoring.window]."
)
@click.option(
    "--sources",
    default="score,cycle,replay",
    show_default=True,
    help="Prediction-log sources whose rows performance grades, comma-separated, preferred "
    "first where several logged one prediction; add 'api' to grade POST /predict rows too.",
)
@click.option(
    "--allow-other-data",
    is_flag=True,
    help="Monitor --data/--snapshot even if its tickers are not the ones the model was "
    "trained on (refused otherwise: drift against its training profile would be wrong).",
)
def monitor(
    cfg: StockpipeConfig,
    model_uri: str | None,
    output_dir: Path | None,
    window: int | None,
    sources: str,
    allow_other_data: bool,
) -> None:
    """Report drift, live performance and API health of a registered model.

    Exits 0 when the status is ok, warn, insufficient or unavailable, 3 on alert and 2 on
    bad input. Without --data/--snapshot: the source the model was trained from, as it is
    now (its file re-read, or the newest snapshots of its tickers); other tickers than the
    model's are refused (exit 2) unless --allow-other-data.
    """
    from pipeline import bootstrap
    from pipeline.monitoring.monitor import check_sources, monitor_horizons

    cfg = bootstrap.apply_overrides(cfg, window=window)  # validated like monitoring.yaml
    folder = (
        output_dir.expanduser().resolve() if output_dir else cfg.resolve(cfg.monitoring.output_dir)
    )
    graded = check_sources(tuple(s.strip().lower() for s in sources.split(",") if s.strip()))
    data = bootstrap.model_data(
        cfg, model_uri, given=data_given(), replay=False, refuse_other_tickers=not allow_other_data
    )
    click.echo(data.note)
    ports = bootstrap.monitor_ports(cfg, data)
    reports = monitor_horizons(cfg, ports, folder, model_uri, graded)
    several = len(reports) > 1
    for report in reports:
        _echo(report, folder / f"h{report.model.horizon}" if several else folder)
    if any(report.status == "alert" for report in reports):
        sys.exit(EXIT_ALERT)


def _echo(report: MonitorReport, folder: Path) -> None:
    drift, perf = report.drift, report.performance
    click.echo(
        f"{report.model.name} v{report.model.version} (h={report.model.horizon}): "
        f"{report.headline or report.status}"
    )
    click.echo(f"  drift: {drift.status} ({drift.detector or 'no detector'})")
    for line in drift.alerts[:ALERT_LINES]:
        click.echo(f"    {line}")
    if len(drift.alerts) > ALERT_LINES:
        click.echo(f"    ... and {len(drift.alerts) - ALERT_LINES} more in monitor.json")
    if drift.reason:
        click.echo(f"    {drift.reason}")
    click.echo(
        f"  performance ({','.join(perf.sources)}): {perf.status}, n={perf.n}, "
        "directional accuracy "
        f"{num(perf.directional_accuracy)}, ic {num(perf.ic)}"
        + (f" ({perf.reason})" if perf.reason else "")
    )
    click.echo(_health(report.health))
    click.echo(
        f"  files: {folder / 'monitor.json'}, {folder / 'dashboard.png'}, {folder / 'report.html'}"
    )


def _health(health: HealthSection | None) -> str:
    """``health: 1,234 requests; /predict p50 14.9 ms p95 22.0 ms p99 40.1 ms; ...``: the
    request log's count and /predict's latency (else the busiest endpoint's), then the API's
    logged predictions."""
    if health is None:
        return "  health: no API prediction and no service request logged"
    parts = [f"{health.logged_requests:,} requests"]
    if health.latency:
        name = "/predict" if "/predict" in health.latency else ""
        name = name or max(health.latency, key=lambda e: health.latency[e].requests)
        e = health.latency[name]
        parts.append(f"{name} p50 {e.p50_ms:,.1f} ms p95 {e.p95_ms:,.1f} ms p99 {e.p99_ms:,.1f} ms")
    else:
        parts.append(health.latency_note or "no latency")
    logged = f"{health.requests:,} API requests, {health.prediction_rows:,} rows"
    parts.append(f"prediction log: {logged}")
    return "  health: " + "; ".join(parts)
