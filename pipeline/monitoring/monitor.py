"""The `monitor` use case: drift, live performance and health of a registered version.

Order: the model is loaded and the tracker reached first, then the inputs are validated and
the recent window computed in a scratch warehouse; only then do the validated prices join the
warehouse (so that realised returns of logged predictions are known), and the report files
and the monitoring run are written last.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import polars as pl

from pipeline.atomic import atomic_write_text, ensure_writable_dir
from pipeline.data.inputs import load_inputs, store_inputs
from pipeline.domain import DataPorts, LoadedModel, ModelLoader, Run, Tracker
from pipeline.errors import ConfigError, TrackingError
from pipeline.horizons import per_horizon
from pipeline.monitoring.dashboard import write_dashboard
from pipeline.monitoring.datadrift import drift_section
from pipeline.monitoring.health import RequestTimes, health_section, latency_start
from pipeline.monitoring.performance import (
    LOG_SOURCES,
    TRACK_RECORD,
    graded,
    performance_section,
)
from pipeline.monitoring.profile import ReferenceProfile
from pipeline.monitoring.recent import RecentWindow, recent_window
from pipeline.monitoring.references import References
from pipeline.monitoring.report import ModelRef, MonitorReport, PerformanceSection
from pipeline.reports.monitor_report import write_monitor_report
from pipeline.settings import StockpipeConfig

log = logging.getLogger(__name__)

HISTORY_MARGIN = 5  # rows beyond warm-up + window, as score reads them


class OutcomeLog(Protocol):
    """The prediction log joined to realised returns (``v_prediction_outcomes``)."""

    def outcomes(self) -> pl.DataFrame: ...


@dataclass(frozen=True, kw_only=True)
class MonitorPorts(DataPorts):
    """The data, the model, its references, the prediction and request logs, the tracker."""

    loader: ModelLoader
    tracker: Tracker
    references: References
    outcomes: OutcomeLog
    requests: RequestTimes


def monitor_horizons(
    cfg: StockpipeConfig,
    ports: MonitorPorts,
    output_dir: Path,
    model_uri: str | None = None,
    sources: tuple[str, ...] = TRACK_RECORD,
) -> list[MonitorReport]:
    """`monitor` of the model asked for, or of every configured horizon's champion
    (:func:`pipeline.horizons.per_horizon` decides which, and where the files go)."""
    jobs = per_horizon(cfg, output_dir, model_uri)
    return [monitor(c, ports, out, uri, sources) for c, out, uri in jobs]


def check_sources(sources: tuple[str, ...]) -> tuple[str, ...]:
    """``sources`` if they are prediction-log sources (at least one, none twice), else
    ConfigError naming the ones there are."""
    unknown = [s for s in sources if s not in LOG_SOURCES]
    if unknown or not sources or len(set(sources)) != len(sources):
        raise ConfigError(
            f"--sources {','.join(sources)}: give one or more distinct sources of "
            f"{', '.join(LOG_SOURCES)} (default {','.join(TRACK_RECORD)})"
        )
    return sources


def monitor(
    cfg: StockpipeConfig,
    ports: MonitorPorts,
    output_dir: Path,
    model_uri: str | None = None,
    sources: tuple[str, ...] = TRACK_RECORD,
) -> MonitorReport:
    """Write ``monitor.json``, ``dashboard.png`` and ``report.html`` into ``output_dir``, log
    them on a monitoring run tagged with the model's name and version, and return the report.
    Performance grades the log rows of ``sources`` (the track record by default)."""
    check_sources(sources)
    uri = model_uri or cfg.tracking.champion_uri
    model = ports.loader.load(uri)
    ports.tracker.check()
    ensure_writable_dir(output_dir, "monitor output folder")
    recent = _recent(cfg, ports, model, uri)
    profile, profile_problem = _profile(ports.references, model)
    rows = _version_rows(ports.outcomes.outcomes(), model)
    since = latency_start(cfg.monitoring.window)  # calendar days of requests (health.py)
    report = MonitorReport.combine(
        ModelRef(
            name=model.name,
            version=model.version,
            uri=uri,
            run_id=model.run_id,
            horizon=model.horizon if model.horizon is not None else cfg.model.target.horizon,
        ),
        dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        recent.info(),
        drift_section(profile, recent, cfg.monitoring, profile_problem),
        _performance(cfg, ports.references, model, rows, sources),
        health_section(rows, ports.requests.since(since), since),
    )
    with ports.tracker.start_run("monitor") as run:
        report = report.model_copy(update={"run_id": run.run_id})
        files = _write(output_dir, report, recent, profile)
        _log_run(run, report, files)
    log.info("monitor of %s: %s; files in %s", uri, report.status, output_dir)
    return report


def _recent(
    cfg: StockpipeConfig, ports: MonitorPorts, model: LoadedModel, uri: str
) -> RecentWindow:
    """The window's features and predictions; the validated prices then join the warehouse."""
    days = cfg.monitoring.window
    inputs = load_inputs(model.benchmark or None, ports.source, ports.benchmark)
    need = model.warmup + days
    inputs, _ = inputs.require_history(
        need, cfg.data.short_history, f"to monitor {days} days with {uri} (warm-up {model.warmup})"
    )
    workspace = ports.workspace()
    store_inputs(workspace, inputs)
    bars = inputs.history(workspace, rows=need + HISTORY_MARGIN).collect()
    recent = recent_window(model, bars, days, uri)
    store_inputs(ports.store, inputs)  # realised returns of logged predictions need the prices
    return recent


def _profile(references: References, model: LoadedModel) -> tuple[ReferenceProfile | None, str]:
    """The version's profile, or None and why there is none (drift is then unavailable)."""
    try:
        profile = references.profile(model)
    except TrackingError as exc:
        return None, str(exc)
    missing = (
        f"version {model.version} has no reference profile: it was registered before "
        "`train` logged profiles (retrain to get one)"
    )
    return profile, missing


def _version_rows(outcomes: pl.DataFrame, model: LoadedModel) -> pl.DataFrame:
    """This version's logged predictions (every source: health reads the API's), with their
    realised returns."""
    return outcomes.filter(
        (pl.col("model_name") == (model.name or ""))
        & (pl.col("model_version") == (model.version or ""))
    )


def _performance(
    cfg: StockpipeConfig,
    references: References,
    model: LoadedModel,
    rows: pl.DataFrame,
    sources: tuple[str, ...],
) -> PerformanceSection:
    """Live performance on the rows of ``sources`` of the model's horizon whose outcome is
    known (one per prediction key)."""
    horizon = model.horizon if model.horizon is not None else cfg.model.target.horizon
    realised = graded(rows, sources).filter(
        pl.col("realised").is_not_null() & (pl.col("horizon") == horizon)
    )
    missing = f"version {model.version} has no backtest predictions on record"
    backtest = None
    if realised.height >= cfg.monitoring.min_rows:  # read only when they will be used
        try:
            backtest = references.backtest_predictions(model)
        except TrackingError as exc:
            missing = str(exc)
    return performance_section(
        realised,
        backtest,
        cfg.monitoring,
        cfg.training.strategy,
        horizon,
        cfg.training.seed,
        missing,
        sources,
    )


def _write(
    folder: Path, report: MonitorReport, recent: RecentWindow, profile: ReferenceProfile | None
) -> list[Path]:
    doc = json.dumps(report.model_dump(mode="json"), indent=2, allow_nan=False)
    return [
        atomic_write_text(folder / "monitor.json", doc),
        write_dashboard(folder / "dashboard.png", report, recent, profile),
        write_monitor_report(folder / "report.html", report, recent, profile),
    ]


def _log_run(run: Run, report: MonitorReport, files: list[Path]) -> None:
    """Tags (model, status), the window, every defined number, and the files."""
    run.set_tags(
        {
            "model_name": report.model.name or "",
            "model_version": report.model.version or "",
            "model_uri": report.model.uri,
            "monitor_status": report.status,
            "drift_status": report.drift.status,
            "performance_status": report.performance.status,
        }
    )
    run.log_params(
        {
            "window": report.window.days,
            "first_date": report.window.first_date,
            "last_date": report.window.last_date,
        }
    )
    metrics = {f"psi_{n}": d.psi for n, d in report.drift.features.items()}
    if report.drift.predictions is not None:
        metrics["psi_predictions"] = report.drift.predictions.psi
    perf = report.performance
    for key in ("directional_accuracy", "ic", "rmse", "rmse_zero", "strategy_sharpe"):
        metrics[f"live_{key}"] = getattr(perf, key)
    metrics["live_n"] = float(perf.n)
    run.log_metrics({k: v for k, v in metrics.items() if v is not None})
    for path in files:
        run.log_artifact(path, "monitor")
