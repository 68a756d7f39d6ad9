"""The model competition: every enabled candidate tuned on the same folds, tracked as runs.

One child run per candidate under the competition's parent run, one nested run per trial
(through ``TrialRunLogger``), and a model logged for each candidate's best trial only, refitted
on all history. The winner is picked on the primary metric in its configured direction.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from optuna.trial import TrialState
from sklearn.pipeline import Pipeline

from pipeline.domain import Fold, Run, Tracker
from pipeline.evaluation.honesty import TrialSet
from pipeline.model.pipeline import build_tail, compose_fitted, feature_step
from pipeline.settings import StockpipeConfig
from pipeline.training.callbacks import Progress, ProgressCallback, TrialRunLogger
from pipeline.training.dataset import TrainingSet
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
    entries: list[Entry]
    best: Entry
    direction: str
    primary: str

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
        table = folder / "comparison.csv"
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
        return [table, plot]


def refit_candidate(cfg: StockpipeConfig, result: CandidateResult, data: TrainingSet) -> Pipeline:
    """Refit the candidate's best params on all rows and prefix the feature step."""
    tail = Pipeline(
        build_tail(cfg.model, result.kind, result.best_params, cfg.training.seed, len(data.columns))
    )
    tail.fit(data.X, data.y)
    features = feature_step(cfg.model).fit(data.raw)
    return compose_fitted(features, tail)


def selection_stability(selected: list[list[str]], columns: tuple[str, ...]) -> str:
    """CSV of how often each feature survived selection across folds, most stable first."""
    n = max(len(selected), 1)
    counts = {c: sum(c in kept for kept in selected) for c in columns}
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return (
        "\n".join(["feature,folds_kept,share"] + [f"{c},{k},{k / n:.3f}" for c, k in rows]) + "\n"
    )


def run_competition(
    cfg: StockpipeConfig,
    tracker: Tracker,
    parent: Run,
    data: TrainingSet,
    folds: list[Fold],
    study_name: str,
    progress: Progress,
    tags: dict[str, str],
) -> CompetitionResult:
    """Tune every enabled candidate; log a model for each one's best trial."""
    tuning = cfg.training.tuning
    ctx = TuningContext.from_config(cfg, data, folds)
    entries: list[Entry] = []
    for cand in (c for c in cfg.candidates.candidates if c.enabled):
        budget = cfg.training.n_trials or cand.n_trials
        with tracker.start_run(cand.name, parent=parent) as child:
            progress.start(cand.name, budget)
            callbacks: list[Callback] = [
                TrialRunLogger(tracker, child, cand.name),
                ProgressCallback(progress, cand.name),
            ]
            result = tune_candidate(cand, ctx, study_name, budget, callbacks)
            progress.finish(cand.name)
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
            child.log_params(
                {
                    "estimator": cand.estimator,
                    "study": f"{study_name}.{cand.name}",
                    **result.best_params,
                }
            )
            child.log_metrics(result.evaluation.mean.defined())
            for k, m in enumerate(result.evaluation.per_fold):
                child.log_metrics({f"fold_{n}": v for n, v in m.defined().items()}, step=k)
            child.log_metrics(
                {
                    "n_trials": result.n_trials,
                    "n_pruned": result.n_pruned,
                    "n_failed": result.n_failed,
                    "best_value": result.best_value,
                }
            )
            child.log_text(
                selection_stability(result.evaluation.selected, data.columns),
                "selection/stability.csv",
            )
            model = refit_candidate(cfg, result, data)
            warmup = int(model.named_steps["features"].warmup_)
            example = data.raw.tail(warmup + 5).to_pandas()
            uri = child.log_model(model, example, {**tags, "candidate": cand.name})
            entries.append(Entry(result, model, uri, child.run_id))
    pick = min if tuning.resolved_direction == "minimize" else max
    best = pick(entries, key=lambda e: e.best_value)
    return CompetitionResult(entries, best, tuning.resolved_direction, tuning.primary_metric)
