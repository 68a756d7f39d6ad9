"""Every trial run carries ``trial/oos.parquet``: its folds' out-of-sample rows and metrics.

The oracles are independent of the code under test: each fold's RMSE is recomputed with numpy
from the file's y_true and y_pred and compared with the fold metric the trial logged; the
predictions are compared with a refit of the trial's logged params with scikit-learn itself on
each fold's rows; the rows with the dates of each fold's test window.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from fakes import FakeRun, FakeTracker, train_ports
from sklearn.feature_selection import SelectKBest, f_regression
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support import make_project

from pipeline.config import load_config
from pipeline.domain import Fold
from pipeline.evaluation.results import Metrics
from pipeline.settings import StockpipeConfig
from pipeline.training.callbacks import TrialEvaluations, trial_table
from pipeline.training.dataset import TrainingSet
from pipeline.training.plan import plan_training
from pipeline.training.train import TrainOptions, train
from pipeline.training.tuning import FoldEvaluation

# Alphas from overfitting to constant, so the median pruner stops some trials after fold 1.
RIDGE = {
    "name": "ridge",
    "estimator": "ridge",
    "n_trials": 7,
    "space": {
        "alpha": {"type": "float", "low": 1e-3, "high": 1e6, "log": True},
        "selector__k": {"type": "int", "low": 5, "high": 20},
    },
}
N_FOLDS = 5  # conf/base/training.yaml
METRICS = [f"fold_{name}" for name in Metrics.model_fields]
COLUMNS = ["fold", "date", "ticker", "y_true", "y_pred", *METRICS]


def _config(root: Path, artifacts: bool = True, n_jobs: int = 1) -> StockpipeConfig:
    training = {
        "summary_path": str(root / "summary.json"),
        "tuning": {"pruner_startup_trials": 2, "n_jobs": n_jobs},
    }
    conf = make_project(
        root,
        tracking={"trial_artifacts": artifacts},
        training=training,
        candidates={"candidates": [RIDGE]},
    )
    return load_config(conf)


def _fold_rmse(table: pl.DataFrame) -> dict[int, float]:
    """Each fold's RMSE recomputed with numpy from the file's own columns."""
    out = {}
    for (fold,), part in table.group_by("fold"):
        err = part["y_true"].to_numpy() - part["y_pred"].to_numpy()
        out[int(fold)] = float(np.sqrt(np.mean(err**2)))
    return out


# --------------------------------------------------------------------------- the file itself


def _tiny_set() -> tuple[TrainingSet, list[Fold]]:
    dates = pl.date_range(dt.date(2024, 1, 1), dt.date(2024, 1, 10), eager=True)
    n = len(dates)
    data = TrainingSet(
        X=np.zeros((n, 1)),
        y=np.linspace(-0.05, 0.05, n),
        dates=dates,
        tickers=pl.Series(["NVDA"] * n),
        columns=("x",),
        raw=pl.DataFrame(),
        last_return=np.zeros(n),
    )
    day = dt.timedelta(days=1)
    start = dates[0]
    folds = [
        Fold(k, start, start + 3 * day, start + (4 + 3 * k) * day, start + (6 + 3 * k) * day, 4, 3)
        for k in range(2)
    ]
    return data, folds


def test_trial_table_has_fold_rows_and_each_folds_metrics() -> None:
    data, folds = _tiny_set()
    first = Metrics(**{**dict.fromkeys(Metrics.model_fields), "rmse": 0.5, "ic": None})
    second = Metrics(**{**dict.fromkeys(Metrics.model_fields), "rmse": 0.25, "ic": 0.1})
    ev = FoldEvaluation([first, second], [np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])])

    table = trial_table(data, folds, ev)

    assert table.columns == COLUMNS
    assert table["fold"].to_list() == [0, 0, 0, 1, 1, 1]
    assert table["date"].to_list() == [dt.date(2024, 1, d) for d in (5, 6, 7, 8, 9, 10)]
    assert table["y_true"].to_list() == data.y[4:].tolist()
    assert table["y_pred"].to_list() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert table["fold_rmse"].to_list() == [0.5] * 3 + [0.25] * 3
    assert table["fold_ic"].to_list() == [None] * 3 + [0.1] * 3  # undefined stays null


def test_store_keeps_a_partial_trial_and_drops_it_once_read() -> None:
    data, folds = _tiny_set()
    store = TrialEvaluations(data, folds)
    pruned = FoldEvaluation([Metrics(**dict.fromkeys(Metrics.model_fields))])
    pruned.predictions.append(np.array([1.0, 2.0, 3.0]))  # only fold 0 ran
    store.put("s.ridge", 3, pruned)
    store.put("s.ridge", 4, FoldEvaluation([]))  # failed before its first fold

    table = store.pop_table("s.ridge", 3)
    assert table is not None and table["fold"].to_list() == [0, 0, 0]
    assert store.pop_table("s.ridge", 4) is None  # nothing ran: no file
    assert store.pop_table("s.ridge", 3) is None and len(store) == 0


# --------------------------------------------------------------------------- through train()


def _fake_train(root: Path, artifacts: bool, n_jobs: int = 1) -> FakeTracker:
    tracker = FakeTracker()
    cfg = _config(root, artifacts, n_jobs)
    train(cfg, train_ports(tracker=tracker), TrainOptions(register=False))
    return tracker


def _objectives(trials: list[FakeRun]) -> dict[str, tuple[str, float | None]]:
    """Each trial's state and value (a pruned trial has none), by trial number."""
    out = {}
    for t in trials:
        value = t.metrics.get("objective", [(None, None)])[0][1]
        out[t.tags["optuna.trial_number"]] = (t.tags["state"], value)
    return out


def _check_fake_trials(trials: list[FakeRun]) -> None:
    """Each trial's file: the folds it logged, each with the RMSE it logged (numpy's)."""
    for trial in trials:
        table = pl.read_parquet(io.BytesIO(trial.artifacts["trial/oos.parquet"]))
        logged = {step: v for step, v in trial.metrics["fold_rmse"]}
        assert table.columns == COLUMNS and sorted(_fold_rmse(table)) == sorted(logged)
        for fold, rmse in _fold_rmse(table).items():
            assert rmse == pytest.approx(logged[fold], rel=0, abs=1e-12)
        ran = N_FOLDS if trial.tags["state"] == "complete" else len(logged)
        assert table["fold"].unique().sort().to_list() == list(range(ran))


@pytest.mark.slow  # seconds: keeps the fast suite under 2 minutes
def test_parallel_trials_each_get_their_own_file(tmp_path: Path) -> None:
    tracker = _fake_train(tmp_path, artifacts=True, n_jobs=2)  # two trials at a time, threads
    numbers = sorted(int(t.tags["optuna.trial_number"]) for t in tracker.trials)
    assert numbers == list(range(RIDGE["n_trials"]))
    _check_fake_trials(tracker.trials)


@pytest.mark.slow  # seconds: keeps the fast suite under 2 minutes
def test_every_fake_trial_carries_its_folds_and_the_switch_turns_it_off(tmp_path: Path) -> None:
    on = _fake_train(tmp_path / "on", artifacts=True)
    states = {t.tags["state"] for t in on.trials}
    assert len(on.trials) == RIDGE["n_trials"] and {"complete", "pruned"} <= states
    _check_fake_trials(on.trials)

    off = _fake_train(tmp_path / "off", artifacts=False)
    assert all(t.artifacts == {} for t in off.trials)
    assert _objectives(off.trials) == _objectives(on.trials)  # the trials did not change


# --------------------------------------------------------------------------- real MLflow


def _trial_runs(cfg: StockpipeConfig) -> list[Any]:
    import mlflow

    client = mlflow.MlflowClient(cfg.tracking_uri)
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    runs = client.search_runs([exp.experiment_id], "tags.`optuna.trial_number` != ''")
    return sorted(runs, key=lambda r: int(r.data.tags["optuna.trial_number"]))


def _download(cfg: StockpipeConfig, run_id: str, dest: Path) -> pl.DataFrame:
    import mlflow

    path = mlflow.artifacts.download_artifacts(
        run_id=run_id,
        artifact_path="trial/oos.parquet",
        dst_path=str(dest),
        tracking_uri=cfg.tracking_uri,
    )
    return pl.read_parquet(path)


def _refit(data: TrainingSet, fold: Fold, params: dict[str, str]) -> np.ndarray:
    """scikit-learn's own pipeline for the trial's params (model.yaml: median, standard, kbest)."""
    dates = data.dates
    train_rows = ((dates >= fold.train_start) & (dates <= fold.train_end)).to_numpy()
    test_rows = ((dates >= fold.test_start) & (dates <= fold.test_end)).to_numpy()
    model = make_pipeline(
        SimpleImputer(strategy="median"),
        StandardScaler(),
        SelectKBest(f_regression, k=int(params["selector__k"])),
        Ridge(alpha=float(params["alpha"])),
    )
    model.fit(data.X[train_rows], data.y[train_rows])
    return np.asarray(model.predict(data.X[test_rows]))


def _check_trial_file(run: Any, table: pl.DataFrame, cfg: StockpipeConfig, plan: Any) -> None:
    import mlflow

    client = mlflow.MlflowClient(cfg.tracking_uri)
    history = client.get_metric_history(run.info.run_id, "fold_rmse")
    logged = {m.step: m.value for m in history}
    folds_ran = sorted(logged)
    assert table["fold"].unique().sort().to_list() == folds_ran
    if run.data.tags["optuna.state"] == "complete":
        assert folds_ran == list(range(N_FOLDS))
    for fold_id, rmse in _fold_rmse(table).items():
        assert rmse == pytest.approx(logged[fold_id], rel=0, abs=1e-12)
    for fold in plan.folds[: len(folds_ran)]:
        part = table.filter(pl.col("fold") == fold.fold)
        window = plan.data.dates.filter(plan.data.dates.is_between(fold.test_start, fold.test_end))
        assert part["date"].to_list() == window.to_list() and part.height == fold.test_rows
        oracle = _refit(plan.data, fold, run.data.params)
        np.testing.assert_allclose(part["y_pred"].to_numpy(), oracle, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_mlflow_trial_runs_carry_a_parquet_a_refit_reproduces(tmp_path: Path) -> None:
    from pipeline import bootstrap

    cfg = _config(tmp_path / "on")
    train(cfg, bootstrap.train_ports(cfg), TrainOptions(register=False))
    runs = _trial_runs(cfg)
    assert {r.data.tags["optuna.state"] for r in runs} >= {"complete", "pruned"}
    assert len(runs) == RIDGE["n_trials"]
    ports = train_ports()
    short = cfg.data.short_history
    plan = plan_training(
        cfg.model, cfg.training.folds, short, ports.source, ports.benchmark, ports.workspace()
    )
    for run in runs:
        table = _download(cfg, run.info.run_id, tmp_path / run.info.run_id)
        assert table.columns == COLUMNS
        _check_trial_file(run, table, cfg, plan)

    off = _config(tmp_path / "off", artifacts=False)
    train(off, bootstrap.train_ports(off), TrainOptions(register=False))
    import mlflow

    client = mlflow.MlflowClient(off.tracking_uri)
    off_runs = _trial_runs(off)
    assert [client.list_artifacts(r.info.run_id) for r in off_runs] == [[] for _ in off_runs]
    objective = [r.data.metrics.get("objective") for r in runs]
    assert [r.data.metrics.get("objective") for r in off_runs] == objective
