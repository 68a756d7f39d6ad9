"""The monitor report's drift section: every input's detector statistic over the window.

The statistic is the novelty detector's daily excess beyond the training range (in range
widths), per date the worst ticker's: the series the dashboard draws, from the same function
(:func:`pipeline.monitoring.dashboard._series`, over :func:`pipeline.monitoring.novelty.excess`),
against the margins a day must pass. Profiles judged by PSI get PSI bars instead.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pipeline.monitoring.dashboard import _psi_bars, _series
from pipeline.monitoring.profile import ReferenceProfile
from pipeline.monitoring.recent import RecentWindow
from pipeline.monitoring.report import SEVERITY, Drift, DriftSection, MonitorReport
from pipeline.reports.charts import BAD, STATUS, WARN, figure, new
from pipeline.reports.html import At, esc, kpis, note, section, table

PER_ROW = 4  # small charts per row
COLUMNS = (
    ("max excess", "max_excess", ".3f"),
    ("days beyond", "days_beyond", "d"),
    ("last value", "last_value", ".4g"),
    ("training low", "training_low", ".4g"),
    ("training high", "training_high", ".4g"),
    ("PSI", "psi", ".3f"),
    ("KS", "ks_statistic", ".3f"),
)


def inputs(drift: DriftSection) -> list[tuple[str, str, Drift]]:
    """(JSON key path, name, result) of every judged input, the most severe and the furthest
    outside its range first."""
    items = [("features", n, d) for n, d in drift.features.items()]
    items += [("data", n, d) for n, d in drift.data.items()]
    if drift.predictions is not None:
        items.append(("", "predictions", drift.predictions))
    return sorted(items, key=lambda x: (-SEVERITY[x[2].status], -(x[2].max_excess or 0.0), x[1]))


def _small(
    ax: Axes,
    name: str,
    d: Drift,
    drift: DriftSection,
    recent: RecentWindow,
    profile: ReferenceProfile,
) -> None:
    series = _series(name, recent, profile)
    alert, warn = drift.alert_margin or 0.0, drift.warn_margin or 0.0
    if series is not None:
        ax.plot(*series, color=STATUS.get(d.status, "black"), lw=1.0)
        ax.set_ylim(0, max(alert * 1.4, float(np.nanmax(series[1])) * 1.1 if series[1].size else 0))
    ax.axhline(alert, color=BAD, ls="--", lw=0.7)
    ax.axhline(warn, color=WARN, ls=":", lw=0.7)
    ax.set_title(f"{name} ({d.status})", fontsize=7, color=STATUS.get(d.status, "black"))
    ax.tick_params(labelsize=6)
    ax.tick_params(axis="x", labelrotation=30)


def _excess_chart(report: MonitorReport, recent: RecentWindow, profile: ReferenceProfile) -> Figure:
    drift = report.drift
    items = inputs(drift)
    rows = -(-len(items) // PER_ROW)
    fig = new(10.0, 0.35 + 1.45 * rows, layout=None)
    axes = fig.subplots(rows, PER_ROW, squeeze=False, sharex=True).ravel()
    fig.subplots_adjust(
        left=0.05,
        right=0.99,
        top=1 - 0.3 / (0.35 + 1.45 * rows),
        bottom=0.06,
        hspace=0.55,
        wspace=0.25,
    )
    for ax, (_, name, d) in zip(axes, items, strict=False):
        _small(ax, name, d, drift, recent, profile)
    for ax in axes[len(items) :]:
        ax.set_axis_off()
    return fig


def _psi_chart(report: MonitorReport) -> Figure:
    n = len(report.drift.features) + 1
    fig = new(9.0, 0.8 + 0.16 * n)
    _psi_bars(fig.add_subplot(), report)
    return fig


def _table(at: At, drift: DriftSection) -> str:
    rows, classes = [], []
    for group, name, d in inputs(drift):
        here = at.at(group, name) if group else at.at("predictions")
        rows.append(
            [
                esc(name),
                here.text("status"),
                here.text("since"),
                *(here.num(k, spec=s) for _, k, s in COLUMNS),
            ]
        )
        classes.append("winner" if d.status in ("warn", "alert") else "")
    header = ["input", "status", "since", *(t for t, _, _ in COLUMNS)]
    return table(header, rows, "Every input, most severe first", classes)


def _chart(report: MonitorReport, recent: RecentWindow, profile: ReferenceProfile) -> str:
    drift = report.drift
    if drift.detector == "novelty" and drift.alert_margin is not None:
        rule = f"{drift.run_days} of {drift.run_window} days"
        return figure(
            "drift-excess",
            "Each input's distance outside its training range, per date (the worst ticker's), "
            f"in range widths; dashed red: the alert margin, dotted amber: the warn margin "
            f"(a status also needs {esc(rule)} beyond it)",
            lambda: _excess_chart(report, recent, profile),
        )
    return figure(
        "drift-psi", "PSI of each input against its alert threshold", lambda: _psi_chart(report)
    )


def drift_section(
    report: MonitorReport, recent: RecentWindow, profile: ReferenceProfile | None
) -> str:
    """Status, the detector's settings, the chart of every input and the table."""
    at, drift = At(report).at("drift"), report.drift
    figures = kpis(
        [
            ("status", at.text("status")),
            ("detector", at.text("detector")),
            ("warn margin", at.num("warn_margin", spec=".2f")),
            ("alert margin", at.num("alert_margin", spec=".2f")),
            ("run rule: days", at.num("run_days", spec="d")),
            ("of the last", at.num("run_window", spec="d")),
            ("window (days)", at.num("window", spec="d")),
        ]
    )
    alerts = "".join(f"<li>{esc(line)}</li>" for line in drift.alerts)
    body = figures + (f"<ul>{alerts}</ul>" if alerts else "")
    if profile is None or drift.status == "unavailable":
        body += note(f"Drift is unavailable: {esc(drift.reason or 'no reference profile')}.")
    else:
        body += _chart(report, recent, profile) + _table(at, drift)
    return section("drift", "Data drift", body, "Recent window against the training rows.")
