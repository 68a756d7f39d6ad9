"""The walk-forward section: fold layout, per-fold and pooled metrics, baselines, honesty."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from pipeline.evaluation.results import FoldReport, WalkForwardReport
from pipeline.reports.charts import BAD, BENCHMARK, MODEL, figure, new
from pipeline.reports.html import At, esc, kpis, section, table

# (column title, metric name, format): the per-fold and pooled table.
FOLD_COLUMNS = (
    ("rmse", "rmse", ".6f"),
    ("mae", "mae", ".6f"),
    ("dir. acc.", "directional_accuracy", ".4f"),
    ("IC", "ic", ".4f"),
    ("Sharpe", "sharpe", ".2f"),
    ("total return", "total_return", "%.1f"),
    ("max DD", "max_drawdown", "%.1f"),
)
FORECAST = (
    ("rmse", "rmse", ".6f"),
    ("mae", "mae", ".6f"),
    ("dir. acc.", "directional_accuracy", ".4f"),
    ("IC", "ic", ".4f"),
)
STRATEGY = (
    ("Sharpe", "sharpe", ".2f"),
    ("annual return", "annual_return", "%.1f"),
    ("max DD", "max_drawdown", "%.1f"),
    ("total return", "total_return", "%.1f"),
)
DASH = "—"
TEST = "#ff7f0e"  # test windows


def _fold_timeline(folds: list[FoldReport]) -> Figure:
    fig = new(9.0, 0.9 + 0.32 * len(folds))
    ax = fig.add_subplot()
    for i, f in enumerate(folds):
        train = np.array([f.train_start, f.train_end], dtype="datetime64[D]")
        test = np.array([f.test_start, f.test_end], dtype="datetime64[D]")
        ax.barh(i, train[1] - train[0], left=train[0], color=MODEL, alpha=0.35, height=0.6)
        ax.barh(i, test[1] - test[0], left=test[0], color=TEST, height=0.6)
    ax.set_yticks(range(len(folds)), [f"fold {f.fold}" for f in folds])
    ax.invert_yaxis()
    handles = [
        Patch(color=MODEL, alpha=0.35, label="train window"),
        Patch(color=TEST, label="test window"),
    ]
    ax.legend(handles=handles, loc="lower left", ncols=2)
    ax.set_title("Fold layout: the gap before each test window is the purge and embargo")
    return fig


def _fold_rows(wf: At, mean: At | None) -> list[list[str]]:
    report: WalkForwardReport = wf.obj
    rows = []
    for k, f in enumerate(report.folds):
        fold = wf.at("folds", k)
        rows.append(
            [
                f"fold {f.fold}",
                f"{esc(f.train_start)} … {esc(f.train_end)} ({fold.num('train_rows', spec='d')})",
                f"{esc(f.test_start)} … {esc(f.test_end)} ({fold.num('test_rows', spec='d')})",
                *(fold.num(key, spec=spec) for _, key, spec in FOLD_COLUMNS),
            ]
        )
    if mean is not None:
        cells = [mean.num(key, spec=spec) for _, key, spec in FOLD_COLUMNS]
        rows.append(["<b>mean</b> of the folds", "", "", *cells])
    cells = [wf.num(key, spec=spec) for _, key, spec in FOLD_COLUMNS]
    return [*rows, ["<b>pooled</b> test rows", "", "", *cells]]


def _fold_table(wf: At, mean: At | None) -> str:
    header = ["", "train (rows)", "test (rows)", *(t for t, _, _ in FOLD_COLUMNS)]
    rows = _fold_rows(wf, mean)
    classes = [""] * len(wf.obj.folds) + (["mean"] if mean is not None else []) + ["pooled"]
    return table(header, rows, "Per fold, and over all folds", classes)


def _baseline_table(wf: At) -> str:
    b = wf.at("baselines")
    rows = [
        ("model (pooled)", wf, True, True),
        ("last return (momentum)", b.at("last_return"), True, True),
        ("zero return", b.at("zero_return"), True, False),
        ("buy and hold", b.at("buy_and_hold"), False, True),
    ]
    body = []
    for name, at, forecast, strategy in rows:
        cells = [at.num(k, spec=s) if forecast else DASH for _, k, s in FORECAST]
        cells += [at.num(k, spec=s) if strategy else DASH for _, k, s in STRATEGY]
        body.append([name, *cells])
    header = ["pooled over the same test rows", *(t for t, _, _ in FORECAST + STRATEGY)]
    return table(header, body, "The model beside no-skill baselines")


def _sharpe_chart(report: WalkForwardReport) -> Figure:
    lo, hi = report.sharpe_ci
    fig = new(5.0, 1.6)
    ax = fig.add_subplot()
    if report.sharpe is not None and lo is not None and hi is not None:
        ax.errorbar(
            [report.sharpe],
            [1],
            xerr=[[report.sharpe - lo], [hi - report.sharpe]],
            fmt="o",
            color=MODEL,
            capsize=5,
            label="model, 95% bootstrap CI",
        )
    bh = report.baselines.buy_and_hold.sharpe
    if bh is not None:
        ax.plot([bh], [0], "s", color=BENCHMARK, label="buy and hold")
    ax.axvline(0, color=BAD, lw=0.8)
    ax.set_yticks([0, 1], ["buy and hold", "model"])
    ax.set_ylim(-0.7, 1.7)
    ax.set_xlabel("annualised Sharpe ratio (pooled)")
    return fig


def _honesty(anchor: str, wf: At) -> str:
    figures = kpis(
        [
            ("Sharpe (pooled)", wf.num("sharpe", spec=".3f")),
            ("95% CI low", wf.num("sharpe_ci", 0, spec=".3f")),
            ("95% CI high", wf.num("sharpe_ci", 1, spec=".3f")),
            ("deflated Sharpe", wf.num("deflated_sharpe", spec=".4f")),
            ("trials N", wf.num("n_trials", spec="d")),
            ("trial Sharpe variance V", wf.num("trial_sharpe_variance", spec=".3g")),
        ]
    )
    text = (
        "The deflated Sharpe is the probability that the pooled Sharpe is not luck among "
        "N tries whose per-period Sharpes vary by V (Bailey and López de Prado); the interval "
        "is a stationary bootstrap of the pooled strategy returns."
    )
    chart = figure(
        f"{anchor}-sharpe",
        "Sharpe ratio with its bootstrap interval",
        lambda: _sharpe_chart(wf.obj),
    )
    return f"<h3>Is the Sharpe ratio luck?</h3><p>{text}</p>{figures}{chart}"


def walkforward_section(anchor: str, wf: At, mean: At | None = None) -> str:
    """The walk-forward section of the report at ``wf`` (``mean``: the fold means, train only)."""
    report: WalkForwardReport = wf.obj
    timeline = figure(
        f"{anchor}-folds",
        "Each fold trains on its window and is tested on the next, never shuffled.",
        lambda: _fold_timeline(report.folds),
    )
    intro = (
        "<b>Per fold</b>: each fold's test rows alone. "
        + (
            "<b>Mean</b>: their unweighted mean, what the competition and the promotion gate "
            "compare. "
            if mean is not None
            else ""
        )
        + (
            "<b>Pooled</b>: every test row at once, what the strategy, the baselines and the "
            "honesty numbers are computed on."
        )
    )
    body = timeline + _fold_table(wf, mean) + _baseline_table(wf) + _honesty(anchor, wf)
    return section(anchor, "Walk-forward evaluation", body, intro)
