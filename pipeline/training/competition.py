"""The model competition: every enabled candidate tuned on the same folds, tracked as runs.

One child run per candidate under the competition's parent run, one nested run per trial
(through ``TrialRunLogger``), and a model logged for each candidate's best trial only, refitted
on all history. The winner is picked on the primary metric in its configured direction.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from optuna.trial import TrialState
from sklearn.pipeline import Pipeline

from pipeline.domain import Run, Tracker
from pipeline.errors import ConfigError
from pipeline.evaluation.honesty import TrialSet
from pipeline.model.estimators import check_params
from pipeline.model.fitting import fit_owned
from pipeline.model.pipeline import (
    SELECTOR_PARAM_PREFIX,
    build_tail,
    compose_fitted,
    feature_step,
)
from pipeline.settings import CandidateConfig, CandidatesConfig, IntervalsConfig, ModelConfig
from pipeline.training.callbacks import (
    Progress,
    ProgressCallback,
    TrialEvaluations,
    TrialRunLogger,
)
from pipeline.training.dataset import TrainingSet
from pipeline.training.stopping import checkpoint
from pipeline.training.summary import CandidateSummary
from pipeline.training.tuning import (
    Callback,
    CandidateResult,
    TuningContext,
    tune_candidate,
)

log = logging.getLogger(__name__)


@dataclass
class Entry:
    """A tuned candidate with its refitted model and where it was logged."""

    result: CandidateResult
    model: Pipeline
    model_uri: str
    run_id: str

    def __getattr__(self, name: str) -> Any:  # delegate name, best_value, evaluation, ...
        return getattr(self.result, name)

    @property
    def warmup(self) -> int:
        return int(self.model.named_steps["features"].warmup_)


@dataclass
class CompetitionResult:
    """Every tuned candidate, the winner, and the study and lineage they were logged with."""

    entries: list[Entry]
    best: Entry
    direction: str
    primary: str
    study_name: str
    lineage: dict[str, str]  # the tags every candidate's model was logged with
    # The winner's prediction intervals: measured by its report, carried by its version.
    intervals: IntervalsConfig = field(default_factory=IntervalsConfig)

    @property
    def trials(self) -> TrialSet:
        """Every trial of every candidate with a Sharpe: the deflated Sharpe's N and V."""
        return TrialSet.from_sharpes(s for e in self.entries for s in e.result.trial_sharpes)

    def summary(self) -> list[CandidateSummary]:
        """One typed row per candidate, in the order they competed."""
        return [
            CandidateSummary(
                name=e.name,
                estimator=e.kind,
                best_value=e.best_value,
                n_trials=e.n_trials,
                n_pruned=e.n_pruned,
                n_failed=e.n_failed,
                budget=e.result.budget,
                timed_out=e.result.timed_out,
                best_params=e.best_params,
                seconds=round(e.seconds, 2),
                metrics=e.evaluation.mean,
                model_uri=e.model_uri,
                run_id=e.run_id,
            )
            for e in self.entries
        ]

    def write_artifacts(self, folder: Path) -> list[Path]:
        """comparison.csv (candidate x metrics) and optimisation_history.png."""
        return [self._write_comparison(folder / "comparison.csv"), self._plot_history(folder)]

    def _write_comparison(self, table: Path) -> Path:
        means = [e.evaluation.mean.model_dump() for e in self.entries]
        keys = sorted({k for m in means for k in m})
        with table.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                [
                    "candidate",
                    "estimator",
                    f"best_{self.primary}",
                    "n_trials",
                    "n_pruned",
                    "seconds",
                    *keys,
                ]
            )
            for e, mean in zip(self.entries, means, strict=True):
                writer.writerow(
                    [
                        e.name,
                        e.kind,
                        e.best_value,
                        e.n_trials,
                        e.n_pruned,
                        round(e.seconds, 2),
                        *(mean[k] for k in keys),
                    ]
                )
        return table

    def _plot_history(self, folder: Path) -> Path:
        plot = folder / "optimisation_history.png"
        fig, ax = plt.subplots(figsize=(9, 5))
        best_fn = np.fmin.accumulate if self.direction == "minimize" else np.fmax.accumulate
        for e in self.entries:
            done = [
                t
                for t in e.result.study.trials
                if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
            ]
            if not done:
                continue
            x = [t.number for t in done]
            y = np.array([t.value for t in done], dtype=float)
            points = ax.scatter(x, y, s=12, alpha=0.5)
            ax.step(x, best_fn(y), where="post", color=points.get_facecolor()[0], label=e.name)
        ax.set_xlabel("trial")
        ax.set_ylabel(f"mean fold {self.primary}")
        ax.set_title("Optimisation history (points: trials, line: best so far)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(plot, dpi=110)
        plt.close(fig)
        return plot


def check_candidates(candidates: CandidatesConfig, seed: int) -> None:
    """Refuse, before any data is read, a candidate whose fixed or searched params its
    estimator does not take (selector params are the pipeline's, not the estimator's)."""
    for cand in candidates.candidates:
        names = [k for k in (*cand.params, *cand.space) if not k.startswith(SELECTOR_PARAM_PREFIX)]
        try:
            check_params(cand.estimator, dict.fromkeys(names), seed)
        except ValueError as exc:
            raise ConfigError(f"model_candidates.yaml: candidate '{cand.name}': {exc}") from exc


def refit_candidate(
    model_cfg: ModelConfig, seed: int, result: CandidateResult, data: TrainingSet
) -> Pipeline:
    """Refit the candidate's best params (with early stopping, the rounds its folds chose) on
    all rows and prefix the feature step.

    The tail works in place on one copy of the matrix, in its (column-major) order: what the
    imputer's own copy used to be, so the scaler's statistics are the same bits."""
    steps = build_tail(model_cfg, result.kind, result.refit_params, seed, len(data.columns))
    tail, _ = fit_owned(steps, data.X.copy(order="K"), data.y)
    features = feature_step(model_cfg).fit(data.raw)
    return compose_fitted(features, tail)


def selection_stability(selected: list[list[str]], columns: tuple[str, ...]) -> str:
    """CSV of how often each feature survived selection across folds, most stable first."""
    n = max(len(selected), 1)
    counts = {c: sum(c in kept for kept in selected) for c in columns}
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return (
        "\n".join(["feature,folds_kept,share"] + [f"{c},{k},{k / n:.3f}" for c, k in rows]) + "\n"
    )


@dataclass(frozen=True)
class Arena:
    """Where a competition is logged: the tracker, the parent run, the study and its tags."""

    tracker: Tracker
    parent: Run
    study_name: str
    progress: Progress
    tags: dict[str, str]  # lineage, set on every candidate's logged model
    trial_artifacts: bool = True  # tracking.trial_artifacts: trial/oos.parquet on trial runs


def run_competition(
    ctx: TuningContext, entrants: list[tuple[CandidateConfig, int]], arena: Arena
) -> CompetitionResult:
    """Tune every entrant (a candidate and its trial budget); log a model for each one's best."""
    entries = [_compete(ctx, cand, budget, arena) for cand, budget in entrants]
    checkpoint()  # before the walk-forward report: a stop request ends the job here
    tuning = ctx.tuning
    pick = min if tuning.resolved_direction == "minimize" else max
    best = pick(entries, key=lambda e: e.best_value)
    return CompetitionResult(
        entries,
        best,
        tuning.resolved_direction,
        tuning.primary_metric,
        arena.study_name,
        arena.tags,
        ctx.model_cfg.intervals,
    )


def _compete(ctx: TuningContext, cand: CandidateConfig, budget: int, arena: Arena) -> Entry:
    """Tune one candidate in its own child run, then refit and log its best trial's model."""
    checkpoint()  # between candidates: no fit running, no run half-opened
    with arena.tracker.start_run(cand.name, parent=arena.parent) as child:
        arena.progress.start(cand.name, budget)
        # Per candidate: the objective hands each trial's folds to the logger, which drops them.
        store = TrialEvaluations(ctx.data, ctx.folds) if arena.trial_artifacts else None
        callbacks: list[Callback] = [
            TrialRunLogger(arena.tracker, child, cand.name, store),
            ProgressCallback(arena.progress, cand.name),
        ]
        keep = None if store is None else store.put
        result = tune_candidate(cand, ctx, arena.study_name, budget, callbacks, keep)
        arena.progress.finish(cand.name)
        child.set_tags({"budget": str(budget), "timed_out": str(result.timed_out).lower()})
        if result.timed_out:
            log.warning(
                "candidate %s: timeout_seconds=%s stopped its study after %d of %d trials; "
                "results now depend on machine load",
                cand.name,
                cand.timeout_seconds,
                result.n_trials,
                budget,
            )
        _log_candidate(child, cand, result, arena.study_name, ctx.data.columns)
        checkpoint()
        model = refit_candidate(ctx.model_cfg, ctx.seed, result, ctx.data)
        checkpoint()  # before log_model: a logged model is stored whole or not at all
        warmup = int(model.named_steps["features"].warmup_)
        example = ctx.data.raw.tail(warmup + 5).to_pandas()
        uri = child.log_model(model, example, {**arena.tags, "candidate": cand.name})
        return Entry(result, model, uri, child.run_id)


def _log_candidate(
    child: Run,
    cand: CandidateConfig,
    result: CandidateResult,
    study_name: str,
    columns: tuple[str, ...],
) -> None:
    """The candidate's best params, its metrics (mean and per fold), trial counts, selection."""
    child.log_params(
        {"estimator": cand.estimator, "study": f"{study_name}.{cand.name}", **result.best_params}
    )
    ev = result.evaluation
    child.log_metrics(ev.mean.defined())
    for k, m in enumerate(ev.per_fold):
        child.log_metrics({f"fold_{n}": v for n, v in m.defined().items()}, step=k)
    if ev.chosen_trees is not None:  # early stopping: rounds per fold, and the refit's
        for k, trees in enumerate(ev.trees):
            child.log_metrics({"fold_n_trees": trees}, step=k)
        child.log_metrics({"n_trees": ev.chosen_trees})
        child.log_params({"refit_n_estimators": ev.chosen_trees})
    child.log_metrics(
        {
            "n_trials": result.n_trials,
            "n_pruned": result.n_pruned,
            "n_failed": result.n_failed,
            "best_value": result.best_value,
        }
    )
    child.log_text(
        selection_stability(result.evaluation.selected, columns), "selection/stability.csv"
    )
