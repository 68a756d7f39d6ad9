"""Forecast quality: predicted against realised, interval coverage, selection stability."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from pipeline.evaluation.results import IntervalLevels, WalkForwardReport
from pipeline.reports.charts import BENCHMARK, MODEL, figure, new
from pipeline.reports.html import At, esc, grid, kpis, note, section, table
from pipeline.reports.series import Evidence, coverage_by_fold, kept_matrix

RASTER_ABOVE = 500  # points: a denser scatter is drawn as one embedded image, not N marks
HEADLINE = (
    ("rmse", "rmse", ".6f"),
    ("mae", "mae", ".6f"),
    ("MAPE (prices)", "mape", "%.2f"),
    ("R² vs zero", "r2", ".4f"),
    ("directional accuracy", "directional_accuracy", ".4f"),
    ("IC", "ic", ".4f"),
    ("rank IC", "rank_ic", ".4f"),
)
LEVEL_COLUMNS = (
    ("rows", "n", "d"),
    ("coverage", "coverage", ".3f"),
    ("mean width", "mean_width", ".4f"),
    ("Winkler", "winkler", ".4f"),
    ("q (carried)", "q", ".4f"),
)


def _scatter(ev: Evidence) -> Figure:
    o = ev.oos
    fig = new(5.2, 4.6)
    ax = fig.add_subplot()
    ax.scatter(
        o.y_pred,
        o.y_true,
        s=5,
        alpha=0.35,
        color=MODEL,
        lw=0,
        rasterized=o.y_pred.size > RASTER_ABOVE,
    )
    ax.axhline(0, color=BENCHMARK, lw=0.6)
    ax.axvline(0, color=BENCHMARK, lw=0.6)
    lim = float(np.nanquantile(np.abs(o.y_true), 0.995)) if o.y_true.size else 1.0
    ax.set_ylim(-lim, lim)
    ax.set_xlabel(f"predicted {ev.horizon}-day log return")
    ax.set_ylabel("realised log return")
    return fig


def _coverage_chart(ev: Evidence, report: WalkForwardReport) -> Figure:
    starts = {f.fold: f.test_start[:7] for f in report.folds}
    fig = new(5.2, 3.0)
    ax = fig.add_subplot()
    for i, key in enumerate(report.intervals or {}):
        level = int(key) / 100
        folds, values = coverage_by_fold(ev, level)
        line = ax.plot(folds, values, "o-", color=f"C{i}", label=f"{key}%")
        ax.axhline(level, color=line[0].get_color(), ls="--", lw=0.8)
    shown = sorted({f.fold for f in report.folds} - {min(starts)})
    ax.set_xticks(shown, [f"fold {k}\n{starts[k]}" for k in shown])
    ax.set_ylabel("share of realised returns inside")
    ax.legend(title="level (dashed: nominal)", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def _interval_table(wf: At, key: str, title: str) -> str:
    levels: IntervalLevels = getattr(wf.obj, key) or {}
    rows = [
        [f"{esc(level)}%", *(wf.at(key, level).num(k, spec=s) for _, k, s in LEVEL_COLUMNS)]
        for level in levels
    ]
    return table(["level", *(t for t, _, _ in LEVEL_COLUMNS)], rows, title)


def _intervals(anchor: str, wf: At, ev: Evidence) -> str:
    report: WalkForwardReport = wf.obj
    if not report.intervals:
        return note("Prediction intervals are off (model.yaml: intervals.levels is empty).")
    method: str = report.intervals_method or ""
    if report.intervals_scale_feature:
        method += f" by {report.intervals_scale_feature}"
    tables = _interval_table(wf, "intervals", f"Conformal intervals ({esc(method)})")
    if report.intervals_split:
        tables += _interval_table(wf, "intervals_split", "Plain split conformal, same rows")
    chart = figure(
        f"{anchor}-coverage",
        "Coverage per fold: each fold's bands calibrated on the folds before it only "
        "(the first fold is not scored)",
        lambda: _coverage_chart(ev, report),
    )
    return grid(chart, tables)


def _stability_chart(ev: Evidence) -> Figure:
    names, kept = kept_matrix(ev)
    fig = new(5.2, 0.9 + 0.15 * len(names))
    ax = fig.add_subplot()
    ax.grid(False)
    ax.imshow(kept, cmap="Blues", vmin=0, vmax=1.25, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(len(names)), names, fontsize=6.5)
    ax.set_xticks(range(kept.shape[1]), [f"fold {k}" for k in range(kept.shape[1])])
    ax.xaxis.tick_top()
    return fig


def _stability(anchor: str, ev: Evidence) -> str:
    if ev.selected is None:
        return note(
            "Selection stability is recorded by <code>train</code> (its report, and "
            "selection/stability.csv on its run); a backtest refits without recording it."
        )
    names, _ = kept_matrix(ev)
    dropped = len(ev.columns) - len(names)
    return figure(
        f"{anchor}-selection",
        f"Features the selector kept in each fold (dark: kept); {dropped} of "
        f"{len(ev.columns)} features were never kept and are not shown.",
        lambda: _stability_chart(ev),
    )


def forecast_section(anchor: str, wf: At, ev: Evidence) -> str:
    """How close the predictions came, how honest the intervals were, which features held."""
    scatter = figure(
        f"{anchor}-scatter", "Predicted against realised, every test row", lambda: _scatter(ev)
    )
    numbers = kpis((title, wf.num(key, spec=spec)) for title, key, spec in HEADLINE)
    body = (
        numbers
        + grid(scatter, _stability(anchor, ev))
        + "<h3>Prediction intervals</h3>"
        + _intervals(anchor, wf, ev)
    )
    return section(anchor, "Forecast quality", body, "Pooled over every test row.")
