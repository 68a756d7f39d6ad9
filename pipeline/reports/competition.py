"""The competition section: candidates side by side, their trials, what mattered, the gate.

The trials and the parameter importances are read from each candidate's Optuna study
(importances by Optuna's own :func:`optuna.importance.get_param_importances`, its default
PED-ANOVA evaluator: milliseconds, deterministic); every other number is the summary's.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.importance import get_param_importances
from optuna.trial import TrialState

from pipeline.reports.charts import BENCHMARK, MODEL, figure, new
from pipeline.reports.html import At, esc, kpis, section, table

if TYPE_CHECKING:  # only the shape of the competition's result is needed here
    import optuna

    from pipeline.training.competition import CompetitionResult
    from pipeline.training.summary import TrainSummary

PER_ROW = 4  # candidates per row of small charts


@dataclass(frozen=True)
class CandidateTrace:
    """One candidate's trials, as its study holds them, and its parameter importances."""

    name: str
    complete: list[tuple[int, float]]  # (trial number, objective)
    pruned: list[tuple[int, float]]  # (trial number, last running value reported)
    importances: dict[str, float]
    why_none: str  # why there are no importances ("" when there are)


@dataclass(frozen=True)
class CompetitionTrace:
    """Every candidate's trace, in the order they competed, and the direction of the metric."""

    candidates: list[CandidateTrace]
    direction: str


def _importances(study: optuna.Study, complete: int) -> tuple[dict[str, float], str]:
    if complete < 2:
        return {}, f"{complete} complete trial: nothing to compare"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            found = get_param_importances(study)
        except (ValueError, RuntimeError) as exc:
            return {}, f"Optuna could not rank the parameters: {exc}"
    if not found:
        return {}, "no tuned parameters"
    if caught:  # e.g. too few trials: Optuna then returns equal importances, which mean nothing
        return {}, f"Optuna: {caught[0].message}"
    return {k: float(v) for k, v in found.items()}, ""


def trace(comp: CompetitionResult) -> CompetitionTrace:
    """The trials and importances of every candidate's study (read once, at the job's end)."""
    out = []
    for entry in comp.entries:
        study: optuna.Study = entry.result.study
        trials = study.get_trials(deepcopy=False)
        complete = [
            (t.number, float(t.value))
            for t in trials
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
        ]
        pruned = [
            (t.number, float(t.intermediate_values[max(t.intermediate_values)]))
            for t in trials
            if t.state == TrialState.PRUNED and t.intermediate_values
        ]
        found, why = _importances(study, len(complete))
        out.append(CandidateTrace(entry.name, complete, pruned, found, why))
    return CompetitionTrace(out, comp.direction)


def _grid(n: int, height: float) -> tuple[Figure, list[Axes]]:
    cols = min(PER_ROW, max(n, 1))
    rows = -(-n // cols)
    fig = new(2.6 * cols + 0.6, height * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes[:n]


def _history_chart(tr: CompetitionTrace, metric: str) -> Figure:
    fig, axes = _grid(len(tr.candidates), 2.4)
    better = min if tr.direction == "minimize" else max
    for ax, cand in zip(axes, tr.candidates, strict=True):
        if cand.pruned:
            x, y = zip(*cand.pruned, strict=True)
            ax.scatter(x, y, marker="x", s=14, color=BENCHMARK, label="pruned")
        if cand.complete:
            x, y = zip(*cand.complete, strict=True)
            ax.scatter(x, y, s=12, color=MODEL, alpha=0.7, label="complete")
            best = [better(y[: i + 1]) for i in range(len(y))]
            ax.step(x, best, where="post", color=MODEL, lw=1.2, label="best so far")
        ax.set_title(cand.name)
        ax.set_xlabel("trial")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7.5)
    axes[0].set_ylabel(f"mean fold {metric}")
    if axes[0].get_legend_handles_labels()[0]:  # a candidate whose every trial failed has none
        axes[0].legend(loc="best", fontsize=6.5)
    return fig


def _importance_chart(tr: CompetitionTrace) -> Figure:
    fig, axes = _grid(len(tr.candidates), 2.2)
    for ax, cand in zip(axes, tr.candidates, strict=True):
        ax.set_title(f"{cand.name} ({len(cand.complete)} complete trials)", fontsize=8.5)
        if not cand.importances:
            ax.text(0.5, 0.5, cand.why_none, ha="center", va="center", wrap=True, fontsize=7)
            ax.set_axis_off()
            continue
        names = list(cand.importances)[::-1]  # Optuna sorts them, most important first
        ax.barh(names, [cand.importances[n] for n in names], color=MODEL)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7.5)
    return fig


def _candidates(summary: At, metric: str) -> str:
    s: TrainSummary = summary.obj
    header = [
        "candidate",
        "estimator",
        f"best {metric}",
        "trials",
        "pruned",
        "failed",
        "budget",
        "seconds",
        "rmse",
        "dir. acc.",
        "Sharpe",
    ]
    rows, classes = [], []
    for i, c in enumerate(s.candidates):
        at = summary.at("candidates", i)
        winner = c.name == s.champion.candidate
        rows.append(
            [
                esc(c.name) + (" ★" if winner else "") + (" (timed out)" if c.timed_out else ""),
                esc(c.estimator),
                at.num("best_value", spec=".6g"),
                at.num("n_trials", spec="d"),
                at.num("n_pruned", spec="d"),
                at.num("n_failed", spec="d"),
                at.num("budget", spec="d"),
                at.num("seconds", spec=".1f"),
                at.num("metrics", "rmse", spec=".6f"),
                at.num("metrics", "directional_accuracy", spec=".4f"),
                at.num("metrics", "sharpe", spec=".2f"),
            ]
        )
        classes.append("winner" if winner else "")
    return table(header, rows, "Candidates (metrics: mean over folds, as ranked)", classes)


def _gate(summary: At) -> str:
    ch = summary.at("champion")
    figures = kpis(
        [
            ("winner", ch.text("candidate")),
            (f"its {ch.obj.primary_metric}", ch.num("primary_value", spec=".6g")),
            ("incumbent version", ch.text("incumbent_version")),
            ("incumbent's value", ch.num("incumbent_value", spec=".6g")),
            ("promoted", ch.text("promoted")),
            ("alias", ch.text("alias")),
            ("forced", ch.text("forced")),
        ]
    )
    return f"<h3>The promotion gate</h3>{figures}<p><b>Reason:</b> {ch.text('reason')}</p>"


def competition_section(anchor: str, summary: At, tr: CompetitionTrace) -> str:
    """Candidates, optimisation history, parameter importances and the gate's decision."""
    s: TrainSummary = summary.obj
    metric = s.champion.primary_metric
    history = figure(
        f"{anchor}-history",
        f"Optimisation history per candidate: each trial's mean fold {esc(metric)} "
        f"({esc(tr.direction)}), pruned trials at their last running value",
        lambda: _history_chart(tr, metric),
    )
    importance = figure(
        f"{anchor}-importance",
        "Parameter importances (Optuna's get_param_importances, PED-ANOVA)",
        lambda: _importance_chart(tr),
    )
    intro = (
        f"Study {esc(s.study_name)}: every candidate tuned on the same folds, "
        f"{summary.num('n_trials', spec='d')} trials in all."
    )
    body = _candidates(summary, metric) + history + importance + _gate(summary)
    return section(anchor, "Model competition", body, intro)
