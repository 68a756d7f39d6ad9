"""The monitor report: ``report.html`` beside ``monitor.json``, the verdict on top.

Sections: data drift (:mod:`pipeline.reports.drift`), live performance against the
backtest's band, and the API's health and latency. Pointers address ``monitor.json``; the
live skill charts are the dashboard's own (:func:`pipeline.monitoring.dashboard._rolling`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pipeline.monitoring.dashboard import _rolling
from pipeline.monitoring.profile import ReferenceProfile
from pipeline.monitoring.recent import RecentWindow
from pipeline.monitoring.report import HealthSection, MonitorReport, PerformanceSection
from pipeline.reports.charts import BAD, MODEL, WARN, figure, new
from pipeline.reports.drift import drift_section
from pipeline.reports.html import (
    At,
    banner,
    esc,
    guarded,
    kpis,
    note,
    page,
    section,
    table,
    write_page,
)

log = logging.getLogger(__name__)
REPORT_FILE = "report.html"
LIVE = (
    ("rows graded", "n", "d"),
    ("directional accuracy", "directional_accuracy", ".4f"),
    ("IC", "ic", ".4f"),
    ("rank IC", "rank_ic", ".4f"),
    ("rmse", "rmse", ".6f"),
    ("zero-forecast rmse", "rmse_zero", ".6f"),
    ("strategy return", "strategy_total_return", "%.2f"),
    ("strategy Sharpe", "strategy_sharpe", ".2f"),
    ("buy-and-hold return", "buy_and_hold_total_return", "%.2f"),
)
BAND = (
    ("alert below", "alert_below"),
    ("warn below", "warn_below"),
    ("median", "median"),
    ("upper", "high"),
)
LATENCY = (
    ("requests", "requests", "d"),
    ("5xx", "server_errors", "d"),
    ("p50 ms", "p50_ms", ".1f"),
    ("p95 ms", "p95_ms", ".1f"),
    ("p99 ms", "p99_ms", ".1f"),
)


def _skill_chart(perf: PerformanceSection) -> Figure:
    fig = new(10.0, 3.2)
    left, right = fig.subplots(1, 2)
    _rolling(left, perf, "directional_accuracy")
    _rolling(right, perf, "ic")
    return fig


def _performance(report: MonitorReport) -> str:
    at, perf = At(report).at("performance"), report.performance
    figures = kpis([("status", at.text("status"))] + [(t, at.num(k, spec=s)) for t, k, s in LIVE])
    where = (
        f"Predictions logged by {esc(', '.join(perf.sources))} from {at.text('first_date')} to "
        f"{at.text('last_date')} whose realised return is known."
    )
    body = f"<p>{where}</p>{figures}"
    if perf.band:
        rows = [
            [esc(m), *(at.at("band", m).num(k, spec=".4f") for _, k in BAND)] for m in perf.band
        ]
        title = f"Where the live value would fall if the backtest's skill held ({perf.band_method})"
        body += table(["metric", *(t for t, _ in BAND)], rows, esc(title))
    if perf.reason:
        body += note(esc(perf.reason))
    if perf.rolling is not None and perf.rolling.dates:
        body += figure(
            "live-skill",
            "Live directional accuracy and IC against the backtest band",
            lambda: _skill_chart(perf),
        )
    return section("performance", "Live performance", body)


def _latency_chart(health: HealthSection) -> Figure:
    names = list(health.latency)
    y = np.arange(len(names))
    fig = new(5.2, 0.9 + 0.45 * len(names))
    ax = fig.add_subplot()
    for i, (key, colour) in enumerate((("p50_ms", MODEL), ("p95_ms", WARN), ("p99_ms", BAD))):
        values = [getattr(health.latency[n], key) for n in names]
        ax.barh(y + (i - 1) * 0.27, values, height=0.27, color=colour, label=key[:3])
    ax.set_yticks(y, names)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.legend(loc="lower right", ncols=3)
    return fig


def _requests_chart(health: HealthSection) -> Figure:
    days = np.array([d.day for d in health.per_day], dtype="datetime64[D]")
    fig = new(5.2, 2.4)
    ax = fig.add_subplot()
    ax.bar(days, [d.requests for d in health.per_day], color=MODEL)
    ax.set_ylabel("API requests (lower bound)")
    ax.tick_params(axis="x", labelrotation=30)
    return fig


def _health(report: MonitorReport) -> str:
    health = report.health
    if health is None:
        return section(
            "health",
            "API health",
            note("The API logged no prediction of this version and the service logged no request."),
        )
    at = At(report).at("health")
    figures = kpis(
        [
            ("status", at.text("status")),
            ("requests", at.num("requests", spec="d")),
            ("prediction rows", at.num("prediction_rows", spec="d")),
            ("requests logged", at.num("logged_requests", spec="d")),
        ]
    )
    body = figures + f"<p>Requests since {at.text('latency_since')} (UTC).</p>"
    if health.latency:
        rows = [
            [esc(e), *(at.at("latency", e).num(k, spec=s) for _, k, s in LATENCY)]
            for e in health.latency
        ]
        body += table(
            ["endpoint", *(t for t, _, _ in LATENCY)],
            rows,
            f"Latency per endpoint ({esc(health.latency_method)} percentiles)",
        )
        body += figure("latency", "Latency per endpoint", lambda: _latency_chart(health))
    else:
        body += note(esc(health.latency_note or "the service logged no request"))
    if health.per_day:
        body += figure("requests", "API requests per day", lambda: _requests_chart(health))
    return section("health", "API health", body, esc(health.note))


def _banner(report: MonitorReport) -> str:
    at, m, w = At(report), report.model, report.window
    title = f"stockpipe monitor: {m.name} v{m.version}: {report.status.upper()}"
    lines = [
        f'<span class="badge s-{esc(report.status)}">{at.text("status")}</span> '
        f"{at.text('headline')}",
        f"Window {at.at('window').text('first_date')} to {at.at('window').text('last_date')} "
        f"({at.at('window').num('rows', spec='d')} rows of {esc(', '.join(w.tickers))}), "
        f"horizon {at.at('model').num('horizon', spec='d')}; {esc(m.uri)}; generated "
        f"{at.text('generated_at')}.",
    ]
    statuses = [
        ("drift", at.at("drift").text("status")),
        ("performance", at.at("performance").text("status")),
    ]
    if report.health is not None:
        statuses.append(("health", at.at("health").text("status")))
    return banner(report.status, esc(title), lines, kpis(statuses))


def write_monitor_report(
    path: Path, report: MonitorReport, recent: RecentWindow, profile: ReferenceProfile | None
) -> Path:
    """Write the report page into ``path`` (atomically)."""
    started = time.perf_counter()
    nav = [("drift", "Drift"), ("performance", "Performance"), ("health", "Health")]
    body = (
        guarded("drift", lambda: drift_section(report, recent, profile))
        + guarded("performance", lambda: _performance(report))
        + guarded("health", lambda: _health(report))
    )
    foot = (
        "Every number is read from monitor.json (each value's data-json attribute is its place "
        "there); the drift chart draws the recent window's inputs."
    )
    title = f"stockpipe monitor: {report.model.name} v{report.model.version}"
    write_page(path, page(title, _banner(report), nav, body, foot))
    log.info(
        "%s: %d KB in %.2f s", path, path.stat().st_size // 1024, time.perf_counter() - started
    )
    return path
