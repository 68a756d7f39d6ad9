"""The model competition: candidates, primary metric, pruning, determinism and resumable studies.

Real Optuna studies (in memory or in a journal file) and a real in-memory DuckDB; fakes for the
tracker and registry so that every run, trial run and artifact can be inspected.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from fakes import FakeRegistry, FakeRun, FakeTracker, train_ports
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from support import write_yaml

from pipeline.bootstrap import apply_overrides
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.settings import StockpipeConfig
from pipeline.training.train import TrainOptions, train

LIGHTGBM = {
    "name": "lightgbm",
    "estimator": "lightgbm",
    "n_trials": 3,
    "params": {"n_estimators": 30, "num_leaves": 7},
    "space": {"learning_rate": {"type": "float", "low": 0.01, "high": 0.2, "log": True}},
}
XGBOOST = {
    "name": "xgboost",
    "estimator": "xgboost",
    "n_trials": 2,
    "params": {"n_estimators": 30},
    "space": {
        "max_depth": {"type": "int", "low": 2, "high": 4},
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.2, "log": True},
    },
}
RIDGE = {
    "name": "ridge",
    "estimator": "ridge",
    "n_trials": 4,
    "space": {
        "alpha": {"type": "float", "low": 0.1, "high": 1e4, "log": True},
        "selector__k": {"type": "int", "low": 5, "high": 20},
    },
}
WIDE_RIDGE = {  # alphas from overfitting to constant: some trials are clearly worse
    "name": "ridge",
    "estimator": "ridge",
    "n_trials": 12,
    "space": {"alpha": {"type": "float", "low": 1e-3, "high": 1e6, "log": True}},
}
N_FOLDS = 5  # conf/base/training.yaml
STATES = {"complete", "pruned", "failed"}


class CrashingTracker(FakeTracker):
    """Dies after logging ``limit`` trials: an interrupted competition."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def log_trial(self, *args: Any, **kwargs: Any) -> None:
        super().log_trial(*args, **kwargs)
        if len(self.trials) >= self.limit:
            raise RuntimeError("simulated crash")


def _configure(
    conf_dir: Path, candidates: list[dict[str, Any]], **training: Any
) -> StockpipeConfig:
    write_yaml(conf_dir / "local" / "model_candidates.yaml", {"candidates": candidates})
    write_yaml(conf_dir / "local" / "training.yaml", training)
    return load_config(conf_dir)


def _train(
    cfg: StockpipeConfig, tracker: FakeTracker | None = None, study_name: str | None = None
) -> tuple[dict[str, Any], FakeTracker, FakeRegistry]:
    tracker, registry = tracker or FakeTracker(), FakeRegistry()
    ports = train_ports(tracker=tracker, registry=registry)
    return train(cfg, ports, TrainOptions(study_name=study_name)), tracker, registry


def _trials_of(tracker: FakeTracker, candidate: str) -> list[FakeRun]:
    return [t for t in tracker.trials if t.name.startswith(f"{candidate}-trial-")]


def _steps(run: FakeRun, metric: str = "rmse") -> list[int | None]:
    return [step for step, _ in run.metrics.get(f"fold_{metric}", [])]


def _journal_study(path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))


@pytest.mark.slow
def test_three_candidates_compete_and_are_tracked(conf_dir: Path) -> None:
    cfg = _configure(conf_dir, [LIGHTGBM, XGBOOST, RIDGE])
    summary, tracker, registry = _train(cfg)

    budgets = {c["name"]: c["n_trials"] for c in (LIGHTGBM, XGBOOST, RIDGE)}
    spaces = {c["name"]: c["space"] for c in (LIGHTGBM, XGBOOST, RIDGE)}
    cands = {c["name"]: c for c in summary["candidates"]}
    assert list(cands) == list(budgets)
    for name, c in cands.items():
        assert c["n_trials"] == budgets[name] and 0 <= c["n_pruned"] <= c["n_trials"]
        assert np.isfinite(c["best_value"]) and c["seconds"] > 0
        assert set(spaces[name]) <= set(c["best_params"])
    assert cands["lightgbm"]["best_params"]["n_estimators"] == 30  # fixed params kept
    assert summary["n_trials"] == sum(budgets.values())

    parent, children = tracker.runs[0], tracker.runs[1:]
    assert parent.params["direction"] == "minimize" and parent.params["primary_metric"] == "rmse"
    best = min(cands.values(), key=lambda c: c["best_value"])
    champ = summary["champion"]
    assert champ["candidate"] == best["name"] and champ["primary_value"] == best["best_value"]
    assert registry.registered["1"]["tags"]["candidate"] == best["name"]

    assert [r.name for r in children] == list(budgets) and all(r.parent is parent for r in children)
    assert all(len(r.models) == 1 for r in children) and parent.models == []
    for child in children:
        trials = _trials_of(tracker, child.name)
        assert len(trials) == budgets[child.name] and all(t.parent is child for t in trials)
        numbers = sorted(int(t.tags["optuna.trial_number"]) for t in trials)
        assert numbers == list(range(budgets[child.name]))
        assert {t.tags["state"] for t in trials} <= STATES
        assert sum(t.tags["state"] == "pruned" for t in trials) == cands[child.name]["n_pruned"]
        done = [t for t in trials if t.tags["state"] == "complete"]
        assert all(_steps(t) == list(range(N_FOLDS)) for t in done)
        # the summary's best is the best complete trial, with that trial's params
        top = min(done, key=lambda t: t.metrics["objective"][0][1])
        assert top.metrics["objective"][0][1] == pytest.approx(cands[child.name]["best_value"])
        assert cands[child.name]["best_params"].items() >= top.params.items()

    table = list(
        csv.DictReader(io.StringIO(parent.artifacts["competition/comparison.csv"].decode()))
    )
    assert [row["candidate"] for row in table] == list(budgets)
    for row in table:
        assert float(row["best_rmse"]) == pytest.approx(cands[row["candidate"]]["best_value"])
        assert int(row["n_trials"]) == budgets[row["candidate"]]
    assert parent.artifacts["competition/optimisation_history.png"].startswith(b"\x89PNG\r\n")


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["directional_accuracy", "sharpe"])
def test_primary_metric_sets_objective_and_direction(conf_dir: Path, metric: str) -> None:
    cfg = _configure(
        conf_dir,
        [{**LIGHTGBM, "n_trials": 2}, {**RIDGE, "n_trials": 3}],
        tuning={"primary_metric": metric},
    )
    summary, tracker, registry = _train(cfg)

    assert tracker.runs[0].params["direction"] == "maximize"
    best = max(summary["candidates"], key=lambda c: c["best_value"])
    champ = summary["champion"]
    assert champ["candidate"] == best["name"] and champ["primary_metric"] == metric
    assert champ["primary_value"] == best["best_value"]
    tags = registry.registered["1"]["tags"]
    assert tags["primary_metric"] == metric and float(tags[metric]) == pytest.approx(
        best["best_value"], rel=1e-7
    )
    # every trial's objective is the mean of that metric over the folds
    checked = 0
    for trial in tracker.trials:
        folds = [v for _, v in trial.metrics[f"fold_{metric}"]]
        if "objective" in trial.metrics and len(folds) == N_FOLDS:
            assert trial.metrics["objective"][0][1] == pytest.approx(np.mean(folds))
            checked += 1
    assert checked >= 3


@pytest.mark.slow
@pytest.mark.parametrize("warmup", [0, 2])
def test_median_pruner_stops_bad_trials_early(conf_dir: Path, tmp_path: Path, warmup: int) -> None:
    journal = tmp_path / "prune.journal"
    tuning = {
        "pruner": "median",
        "pruner_startup_trials": 2,
        "pruner_warmup_folds": warmup,
        "storage": str(journal),
    }
    cfg = _configure(conf_dir, [WIDE_RIDGE], tuning=tuning)
    summary, tracker, _ = _train(cfg, study_name="prune")

    ridge = summary["candidates"][0]
    assert ridge["n_trials"] == 12 and ridge["n_pruned"] > 0
    study = _journal_study(journal, "prune.ridge")
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert len(pruned) == ridge["n_pruned"]
    for t in pruned:  # stopped before the last fold, never inside the warm-up folds
        assert warmup + 1 <= len(t.intermediate_values) < N_FOLDS
        assert sorted(t.intermediate_values) == list(range(len(t.intermediate_values)))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert all(len(t.intermediate_values) == N_FOLDS for t in complete)
    runs = [t for t in _trials_of(tracker, "ridge") if t.tags["state"] == "pruned"]
    assert len(runs) == len(pruned) and all(len(_steps(r)) < N_FOLDS for r in runs)

    no_pruner = _configure(conf_dir, [WIDE_RIDGE], tuning={"pruner": "none"})
    assert _train(no_pruner)[0]["candidates"][0]["n_pruned"] == 0


@pytest.mark.slow
def test_same_seed_same_competition(conf_dir: Path) -> None:
    cfg = _configure(conf_dir, [{**LIGHTGBM, "n_trials": 2}, XGBOOST, {**RIDGE, "n_trials": 2}])
    a, ta, _ = _train(cfg)
    b, tb, _ = _train(cfg)

    assert a["champion"]["candidate"] == b["champion"]["candidate"]
    assert a["champion"]["primary_value"] == b["champion"]["primary_value"]
    assert a["metrics"] == b["metrics"]
    keys = ("name", "best_value", "best_params", "n_trials", "n_pruned", "metrics")
    assert [{k: c[k] for k in keys} for c in a["candidates"]] == [
        {k: c[k] for k in keys} for c in b["candidates"]
    ]
    assert [t.params for t in ta.trials] == [t.params for t in tb.trials]

    other, _, _ = _train(apply_overrides(cfg, seed=7))  # the seed does drive the sampler
    assert [c["best_params"] for c in other["candidates"]] != [
        c["best_params"] for c in a["candidates"]
    ]


@pytest.mark.slow
def test_interrupted_study_resumes_with_only_missing_trials(conf_dir: Path, tmp_path: Path) -> None:
    journal = tmp_path / "studies.journal"
    cfg = _configure(
        conf_dir,
        [{**LIGHTGBM, "n_trials": 4}, {**RIDGE, "n_trials": 4}],
        tuning={"storage": str(journal)},
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(cfg, CrashingTracker(limit=3), study_name="resume")
    assert len(_journal_study(journal, "resume.lightgbm").trials) == 3

    summary, tracker, _ = _train(cfg, study_name="resume")
    assert summary["study_name"] == "resume"
    assert [t.name for t in _trials_of(tracker, "lightgbm")] == ["lightgbm-trial-3"]
    assert [t.name for t in _trials_of(tracker, "ridge")] == [f"ridge-trial-{i}" for i in range(4)]
    for name in ("lightgbm", "ridge"):
        study = _journal_study(journal, f"resume.{name}")
        assert [t.number for t in study.trials] == [0, 1, 2, 3]
        assert all(t.state.is_finished() for t in study.trials)
    assert [c["n_trials"] for c in summary["candidates"]] == [4, 4] and summary["n_trials"] == 8

    again, tracker, _ = _train(cfg, study_name="resume")  # budget reached: nothing to add
    assert tracker.trials == [] and [c["n_trials"] for c in again["candidates"]] == [4, 4]
    assert again["champion"]["primary_value"] == summary["champion"]["primary_value"]


@pytest.mark.slow
def test_resumed_study_samples_new_params(conf_dir: Path, tmp_path: Path) -> None:
    journal = tmp_path / "studies.journal"
    ridge = {**WIDE_RIDGE, "n_trials": 2}
    _train(_configure(conf_dir, [ridge], tuning={"storage": str(journal)}), study_name="dup")
    _train(
        _configure(conf_dir, [ridge], n_trials=4, tuning={"storage": str(journal)}),
        study_name="dup",
    )

    alphas = [t.params["alpha"] for t in _journal_study(journal, "dup.ridge").trials]
    assert len(alphas) == 4
    assert len(set(alphas)) == 4, f"resumed trials repeat earlier params: {alphas}"


def test_sqlite_study_storage_is_rejected(conf_dir: Path) -> None:
    write_yaml(conf_dir / "local" / "training.yaml", {"tuning": {"storage": "sqlite:///x.db"}})
    with pytest.raises(ConfigError) as err:
        load_config(conf_dir)
    msg = str(err.value)
    assert "local/training.yaml: key 'tuning" in msg
    assert "storage" in msg and "SQLite" in msg and "journal" in msg and "postgresql://" in msg

    write_yaml(conf_dir / "local" / "training.yaml", {"tuning": {"storage": "out/s.journal"}})
    assert load_config(conf_dir).training.tuning.storage == "out/s.journal"
