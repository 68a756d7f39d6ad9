"""The monitoring dashboard: one PNG with drift, the prediction distribution and live skill."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: cron and CI have no display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from pipeline.atomic import atomic_write
from pipeline.monitoring.novelty import excess
from pipeline.monitoring.profile import ReferenceProfile
from pipeline.monitoring.recent import RecentWindow
from pipeline.monitoring.report import MonitorReport, PerformanceSection

COLOURS = {
    "ok": "tab:green",
    "warn": "tab:orange",
    "alert": "tab:red",
    "insufficient": "tab:grey",
    "unavailable": "tab:grey",
}
TOP_INPUTS = 6  # inputs drawn in the drift panel: those furthest outside their range


def _psi_bars(ax: Axes, report: MonitorReport) -> None:
    """PSI per input against its alert threshold (detector psi: profiles before format 2)."""
    drift = report.drift
    items = [(n, d) for n, d in drift.features.items() if d.psi is not None]
    if drift.predictions is not None and drift.predictions.psi is not None:
        items.append(("(predictions)", drift.predictions))
    y = np.arange(len(items))
    ax.barh(y, [d.psi or 0.0 for _, d in items], color=[COLOURS[d.status] for _, d in items])
    alert = [d.alert_above or np.nan for _, d in items]
    ax.scatter(alert, y, marker="|", color="black", s=60, label="alert threshold")
    ax.set_yticks(y, [n for n, _ in items], fontsize=6)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("PSI (recent window vs training rows)")
    ax.legend(loc="lower right", fontsize=7)


def _series(
    name: str, recent: RecentWindow, profile: ReferenceProfile
) -> tuple[np.ndarray, np.ndarray] | None:
    """(dates, excess) of one input: per date, the largest excess over the tickers, each
    judged against its own range as the detector does (:func:`novelty.excess`)."""
    values: np.ndarray | None = recent.data.get(name)
    ref = profile.data.get(name)
    if name in recent.columns:
        values, ref = recent.X[:, recent.columns.index(name)], profile.features.get(name)
    elif name == "predictions":
        values, ref = recent.predictions, profile.predictions
    if ref is None or values is None:
        return None
    out = np.zeros(values.size)
    for ticker in np.unique(recent.tickers):
        rows = recent.tickers == ticker
        rng = ref.range_for(str(ticker))
        if rng is None:
            return None
        out[rows] = np.nan_to_num(excess(values[rows], rng), nan=0.0)
    dates = np.unique(recent.dates)
    per_date = np.array([out[recent.dates == d].max() for d in dates])
    return dates.astype("datetime64[D]"), per_date


def _excess_lines(
    ax: Axes, report: MonitorReport, recent: RecentWindow, profile: ReferenceProfile
) -> None:
    """The detector's statistic over the window for the inputs that moved most, with the
    margins a day must pass (the status also needs the run rule, said in the legend)."""
    drift = report.drift
    judged = {**drift.features, **drift.data}
    if drift.predictions is not None:
        judged["predictions"] = drift.predictions
    top = sorted(judged.items(), key=lambda kv: -(kv[1].max_excess or 0.0))[:TOP_INPUTS]
    for name, d in top:
        series = _series(name, recent, profile)
        if series is not None:
            ax.plot(*series, lw=1, label=f"{name} ({d.status})")
    rule = f"{drift.run_days} of {drift.run_window} days"
    ax.axhline(drift.alert_margin or 0.0, color="tab:red", ls="--", lw=1, label=f"alert: {rule}")
    ax.axhline(drift.warn_margin or 0.0, color="tab:orange", ls=":", lw=1, label=f"warn: {rule}")
    ax.set_ylabel("outside the training range (range widths)")
    ax.legend(fontsize=6, loc="upper left")
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)


def _drift(
    ax: Axes, report: MonitorReport, recent: RecentWindow, profile: ReferenceProfile | None
) -> None:
    drift = report.drift
    if profile is None or drift.status == "unavailable":
        ax.text(0.5, 0.5, f"drift {drift.status}: {drift.reason}", ha="center", wrap=True)
        ax.set_axis_off()
        return
    if drift.detector == "novelty" and drift.alert_margin is not None:
        _excess_lines(ax, report, recent, profile)
    else:
        _psi_bars(ax, report)
    where = [t for t, s in drift.tickers.items() if s == drift.status and s != "ok"]
    ax.set_title(f"Data drift: {drift.status}" + (f" ({', '.join(where[:6])})" if where else ""))


def _predictions(ax: Axes, recent: RecentWindow, profile: ReferenceProfile | None) -> None:
    ref = profile.predictions if profile is not None else None
    if ref is not None and ref.sample:
        ax.hist(ref.sample, bins=40, density=True, alpha=0.5, label="backtest (out of sample)")
    ax.hist(recent.predictions, bins=20, density=True, alpha=0.6, label="recent window")
    ax.set_xlabel("predicted log return")
    ax.set_title("Prediction distribution")
    ax.legend(fontsize=7)


def _rolling(ax: Axes, perf: PerformanceSection, metric: str) -> None:
    """The rolling metric, and the full track's value against the band it is judged on (the
    band is for the whole track's size, so the noisier rolling line may leave it)."""
    rolling, band = perf.rolling, (perf.band or {}).get(metric)
    if rolling is None or not rolling.dates:
        ax.text(0.5, 0.5, "not enough realised predictions", ha="center")
        ax.set_axis_off()
        return
    values = [np.nan if v is None else v for v in getattr(rolling, metric)]
    dates = np.array(rolling.dates, dtype="datetime64[D]")
    ax.plot(dates, values, lw=0.8, label=f"live, rolling {rolling.window} dates")
    full = getattr(perf, metric)
    if full is not None:
        ax.axhline(full, color="black", ls="--", lw=1, label=f"live, all {perf.n}: {full:.3f}")
    if band is not None and band.warn_below is not None and band.high is not None:
        label = f"backtest band at n={perf.n}"
        ax.axhspan(band.warn_below, band.high, color="tab:blue", alpha=0.15, label=label)
    if band is not None and band.alert_below is not None:
        ax.axhline(band.alert_below, color="tab:red", lw=0.8, label="alert below")
    ax.set_title(f"{metric.replace('_', ' ')}: {perf.status}")
    ax.legend(fontsize=7)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)


def write_dashboard(
    path: Path, report: MonitorReport, recent: RecentWindow, profile: ReferenceProfile | None
) -> Path:
    """Draw the dashboard into ``path`` (PNG, written atomically)."""
    perf = report.performance
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    _drift(axes[0][0], report, recent, profile)
    _predictions(axes[0][1], recent, profile)
    _rolling(axes[1][0], perf, "directional_accuracy")
    _rolling(axes[1][1], perf, "ic")
    health = report.health
    served = "API: no logged requests" if health is None else f"API: {health.requests} requests"
    fig.suptitle(
        f"{report.model.name} v{report.model.version}: {report.status.upper()}   "
        f"(window {report.window.first_date}..{report.window.last_date}; performance "
        f"{perf.status}, n={perf.n}; {served})"
    )
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)
    return path
