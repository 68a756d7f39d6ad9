"""Peer comparison: stockpipe against mlforecast and skforecast on the same NVDA problem.

The same problem for every tool: NVDA daily closes (``data/sample/NVDA.csv``), target the
next-day log return (horizon 1), the 5 walk-forward test windows of 250 trading days of
stockpipe's default fold layout (expanding train windows, purge 1), LightGBM tuned by a seeded
Optuna TPE study with the same trial count over the ``lightgbm`` candidate's search space in
``conf/base/model_candidates.yaml`` (minus ``selector__k``, which has no equivalent in the peers),
and one-step-ahead out-of-sample predictions on the same 1,250 test dates, scored against the
zero forecast on those dates.

The peers use their own features: 5 lags of the daily log return and rolling means (5, 20) and
standard deviations (5, 20, 60) of it, the same 10 columns in both peers. stockpipe uses its
40 declared features (``conf/base/model.yaml``) and a SelectKBest selector tuned in the study.

Not a pytest module (the name does not match ``test_*.py``): CI does not install the peers.
Install them into a separate environment, never into the project's dev venv (both peers pin
``pandas<3`` and would downgrade it)::

    python3.11 -m venv /tmp/peers-venv
    /tmp/peers-venv/bin/pip install -e ".[peers]"
    # or only the pieces: pip install mlforecast skforecast optuna lightgbm pyyaml

    /tmp/peers-venv/bin/python benchmarks/peers/run_peers.py --trials 15 --peer all \\
        --stockpipe-bin .venv/bin/stockpipe --json /tmp/peers.json

``--peer stockpipe`` (also part of ``all`` when ``--stockpipe-bin`` is given) runs
``stockpipe train --trials N`` with only the lightgbm candidate on a scratch copy of ``conf/`` and
``data/sample/`` in a temporary folder (its own warehouse and sqlite MLflow store; nothing is
written into the repository) and reads its summary.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
LAGS = (1, 2, 3, 4, 5)
ROLL_MEAN = (5, 20)
ROLL_STD = (5, 20, 60)
WINDOW = max(*LAGS, *ROLL_MEAN, *ROLL_STD)  # rows of history the peers' features need
INSTALL_HINT = (
    "the peers are an optional extra: install them into a separate venv, e.g.\n"
    "  python3.11 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install -e '.[peers]'\n"
    "(not into the project's dev venv: mlforecast and skforecast pin pandas<3)"
)


# ----------------------------------------------------------------------------- the problem


@dataclass(frozen=True)
class Fold:
    fold: int
    train_start: int  # as-of row indices into the price file (row i's target is r[i + 1])
    train_end: int
    test_start: int
    test_end: int


@dataclass
class Problem:
    dates: np.ndarray  # trading dates (datetime64[D]) of the price file
    r: np.ndarray  # r[i] = log(close[i] / close[i - 1]); r[0] = nan
    folds: list[Fold]
    purge: int

    def test_targets(self) -> np.ndarray:
        """Indices into ``r`` of every test target, in order (as-of row + 1)."""
        return np.concatenate([np.arange(f.test_start, f.test_end + 1) + 1 for f in self.folds])

    def asof_dates(self, targets: np.ndarray) -> list[str]:
        return [str(d) for d in self.dates[targets - 1]]


def load_problem(
    path: Path,
    n_folds: int,
    test_size: int,
    purge: int,
    warmup_rows: int,
    folds_json: Path | None,
) -> Problem:
    """Closes, one-day log returns and stockpipe's fold layout (rebuilt, or read from JSON).

    The layout is the one of ``sql/040_v_folds.sql`` for one ticker and horizon 1: the test
    windows tile the end of the labelled rows (every row but the last), each train window
    starts at the first row stockpipe trains on (after its features' warm-up, ``warmup_rows``)
    and ends ``purge`` rows before its test window.
    """
    import csv

    with path.open(newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda row: row["date"])
    dates = np.array([row["date"] for row in rows], dtype="datetime64[D]")
    close = np.array([float(row["close"]) for row in rows])
    r = np.full(len(close), np.nan)
    r[1:] = np.log(close[1:] / close[:-1])
    labelled = len(close) - 1
    first_test = labelled - n_folds * test_size
    folds = [
        Fold(
            k,
            warmup_rows,
            first_test + k * test_size - purge - 1,
            first_test + k * test_size,
            first_test + (k + 1) * test_size - 1,
        )
        for k in range(n_folds)
    ]
    if folds_json is not None:  # `stockpipe folds --config conf/ --format json`
        manifest = json.loads(folds_json.read_text())["folds"]
        for f, m in zip(folds, manifest, strict=True):
            got = (str(dates[f.train_end]), str(dates[f.test_start]), str(dates[f.test_end]))
            want = (m["train_end"], m["test_start"], m["test_end"])
            if got != want:
                raise SystemExit(f"fold {f.fold}: rebuilt {got} but {folds_json} says {want}")
    return Problem(dates, r, folds, purge)


def lightgbm_space(config: Path) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The ``lightgbm`` candidate's fixed params and space; ``selector__*`` params are dropped."""
    import yaml

    doc = yaml.safe_load((config / "base" / "model_candidates.yaml").read_text())
    cand = next(c for c in doc["candidates"] if c["name"] == "lightgbm")
    space = {k: v for k, v in cand["space"].items() if not k.startswith("selector__")}
    dropped = [k for k in cand["space"] if k.startswith("selector__")]
    return dict(cand.get("params") or {}), space, dropped


def suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    """Optuna suggestions for a space in model_candidates.yaml's syntax."""
    out: dict[str, Any] = {}
    for name, s in space.items():
        if s["type"] == "int":
            out[name] = trial.suggest_int(
                name, s["low"], s["high"], step=s.get("step", 1), log=s.get("log", False)
            )
        elif s["type"] == "float":
            out[name] = trial.suggest_float(
                name, s["low"], s["high"], step=s.get("step"), log=s.get("log", False)
            )
        else:
            out[name] = trial.suggest_categorical(name, s["choices"])
    return out


def make_lgbm(fixed: dict[str, Any], params: dict[str, Any], seed: int) -> Any:
    """LightGBM exactly as stockpipe builds it (pipeline/model/estimators.py)."""
    from lightgbm import LGBMRegressor

    p = {"n_jobs": 1, "verbose": -1, **fixed, **params}
    return LGBMRegressor(random_state=seed, deterministic=True, force_row_wise=True, **p)


def rmse(err: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(err))))


@dataclass
class Result:
    tool: str
    version: str
    trials: int
    study_seconds: float  # wall time of the tuning study
    total_seconds: float  # wall time of the whole job (imports, data, study, final backtest)
    cpu_seconds: float | None  # CPU time (user + sys) of the whole job
    rmse: float
    zero_rmse: float
    mean_fold_rmse: float
    best_params: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_trial(self) -> float:
        return self.study_seconds / self.trials

    @property
    def ratio(self) -> float:
        return self.rmse / self.zero_rmse


def score(tool: str, problem: Problem, targets: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Pooled and per-fold RMSE of ``pred`` on the test targets, checked to be the right dates."""
    want = problem.test_targets()
    if not np.array_equal(targets, want):
        raise SystemExit(f"{tool}: predictions are not on the {len(want)} stockpipe test dates")
    y = problem.r[want]
    edges = np.cumsum([0] + [f.test_end - f.test_start + 1 for f in problem.folds])
    per_fold = [rmse((y - pred)[a:b]) for a, b in itertools.pairwise(edges)]
    return {
        "rmse": rmse(y - pred),
        "zero_rmse": rmse(y),
        "mean_fold_rmse": float(np.mean(per_fold)),
        "fold_rmse": per_fold,
    }


def series_start(problem: Problem) -> int:
    """Index into ``r`` of the first value handed to a peer: WINDOW rows before its first target.

    The peers' first training target is then stockpipe's first training row's target."""
    return problem.folds[0].train_start + 1 - WINDOW


# ----------------------------------------------------------------------------- mlforecast


def run_mlforecast(
    problem: Problem, trials: int, seed: int, config: Path, verify_cv: bool
) -> Result:
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    try:
        import mlforecast
        import optuna
        import pandas as pd
        from mlforecast import MLForecast
        from mlforecast.lag_transforms import RollingMean, RollingStd
    except ImportError as exc:
        raise SystemExit(f"mlforecast: {exc}\n{INSTALL_HINT}") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fixed, space, dropped = lightgbm_space(config)
    j0 = series_start(problem)
    last = problem.folds[-1].test_end + 1
    df = pd.DataFrame(
        {"unique_id": "NVDA", "ds": np.arange(j0, last + 1), "y": problem.r[j0 : last + 1]}
    )

    def forecaster(params: dict[str, Any]) -> Any:
        return MLForecast(
            models={"lgbm": make_lgbm(fixed, params, seed)},
            freq=1,
            lags=list(LAGS),
            lag_transforms={
                1: [RollingMean(w) for w in ROLL_MEAN] + [RollingStd(w) for w in ROLL_STD]
            },
        )

    # The features (lags and rolling windows of the series, shifted by one) are computed once
    # by MLForecast.preprocess; each fold's models are fitted with MLForecast.fit_models on the
    # rows whose target is in the train window and predict the test rows, whose features only
    # see returns up to the day before. That is what cross_validation(h=1, step_size=1,
    # refit=250) does, without recomputing the features for each of the 1,250 one-day windows
    # (--verify-cv checks the two agree and times the cross_validation route).
    base = forecaster({})
    prep = base.preprocess(df, dropna=True)
    feats = [c for c in prep.columns if c not in ("unique_id", "ds", "y")]
    ds = prep["ds"].to_numpy()
    X = prep[feats]
    y = prep["y"].to_numpy()
    splits = []
    for f in problem.folds:
        tr = (ds >= f.train_start + 1) & (ds <= f.train_end + 1)
        te = (ds >= f.test_start + 1) & (ds <= f.test_end + 1)
        splits.append((tr, te))

    def predict_all(params: dict[str, Any]) -> tuple[np.ndarray, list[float]]:
        preds, fold_rmse = [], []
        base.models = {"lgbm": make_lgbm(fixed, params, seed)}
        for tr, te in splits:
            base.fit_models(X[tr], y[tr])
            p = base.models_["lgbm"].predict(X[te])
            preds.append(p)
            fold_rmse.append(rmse(y[te] - p))
        return np.concatenate(preds), fold_rmse

    def objective(trial: Any) -> float:
        _, fold_rmse = predict_all(suggest(trial, space))
        return float(np.mean(fold_rmse))  # stockpipe's objective: mean RMSE over the folds

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    t0, c0 = time.perf_counter(), time.process_time()
    study.optimize(objective, n_trials=trials)
    study_seconds, study_cpu = time.perf_counter() - t0, time.process_time() - c0
    best = dict(study.best_params)
    pred, _ = predict_all(best)
    targets = np.concatenate([ds[te] for _, te in splits])
    sc = score("mlforecast", problem, targets, pred)
    total = time.perf_counter() - t_start
    cpu = time.process_time() - cpu_start
    extra: dict[str, Any] = {
        "features": feats,
        "fold_rmse": sc["fold_rmse"],
        "study_cpu": study_cpu,
    }
    if verify_cv:
        extra["cross_validation"] = verify_mlforecast_cv(problem, forecaster, best, df, pred)
    return Result(
        "mlforecast + LightGBM",
        mlforecast.__version__,
        trials,
        study_seconds,
        total,
        cpu,
        sc["rmse"],
        sc["zero_rmse"],
        sc["mean_fold_rmse"],
        best,
        [f"dropped from the space: {dropped}", "objective: mean RMSE over the 5 folds"],
        extra,
    )


def verify_mlforecast_cv(
    problem: Problem,
    forecaster: Callable[[dict[str, Any]], Any],
    params: dict[str, Any],
    df: Any,
    fast_pred: np.ndarray,
) -> dict[str, Any]:
    """One ``MLForecast.cross_validation(h=1, step_size=1, refit=250)`` with ``params``, timed.

    cross_validation has no purge (each refit trains on every target up to the day before the
    window), so it is compared with the fast route run without purge."""
    n_test = sum(f.test_end - f.test_start + 1 for f in problem.folds)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    cv = forecaster(params).cross_validation(df, n_windows=n_test, h=1, step_size=1, refit=250)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    # the fast route without purge
    fc = forecaster(params)
    prep = fc.preprocess(df, dropna=True)
    feats = [c for c in prep.columns if c not in ("unique_id", "ds", "y")]
    ds = prep["ds"].to_numpy()
    preds = []
    for f in problem.folds:
        tr = (ds >= f.train_start + 1) & (ds <= f.test_start)
        te = (ds >= f.test_start + 1) & (ds <= f.test_end + 1)
        fc.fit_models(prep.loc[tr, feats], prep["y"].to_numpy()[tr])
        preds.append(fc.models_["lgbm"].predict(prep.loc[te, feats]))
    nopurge = np.concatenate(preds)
    cv_pred = cv.sort_values("ds")["lgbm"].to_numpy()
    return {
        "seconds_one_trial": seconds,
        "cpu_seconds_one_trial": cpu,
        "max_abs_diff_vs_fast_route_without_purge": float(np.max(np.abs(cv_pred - nopurge))),
        "max_abs_diff_vs_fast_route_with_purge": float(np.max(np.abs(cv_pred - fast_pred))),
        "test_ds_match": bool(
            np.array_equal(cv.sort_values("ds")["ds"].to_numpy(), problem.test_targets())
        ),
    }


# ----------------------------------------------------------------------------- skforecast


def run_skforecast(problem: Problem, trials: int, seed: int, config: Path) -> Result:
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    try:
        import optuna
        import pandas as pd
        import skforecast
        from skforecast.model_selection import (
            TimeSeriesFold,
            backtesting_forecaster,
            bayesian_search_forecaster,
        )
        from skforecast.preprocessing import RollingFeatures
        from skforecast.recursive import ForecasterRecursive
    except ImportError as exc:
        raise SystemExit(f"skforecast: {exc}\n{INSTALL_HINT}") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fixed, space, dropped = lightgbm_space(config)
    j0 = series_start(problem)
    last = problem.folds[-1].test_end + 1
    y = pd.Series(problem.r[j0 : last + 1], index=pd.RangeIndex(j0, last + 1), name="y")
    n_test = len(problem.test_targets())

    def forecaster(params: dict[str, Any]) -> Any:
        return ForecasterRecursive(
            estimator=make_lgbm(fixed, params, seed),
            lags=list(LAGS),
            window_features=RollingFeatures(
                stats=["mean"] * len(ROLL_MEAN) + ["std"] * len(ROLL_STD),
                window_sizes=[*ROLL_MEAN, *ROLL_STD],
            ),
        )

    # One-step-ahead backtest over the 1,250 test days, refitted (expanding) every 250 days,
    # i.e. at the start of each test window. TimeSeriesFold's `gap` moves the forecast origin
    # (it would make these 2-step forecasts), so there is no purge: each refit also trains on
    # the one target stockpipe purges.
    def cv() -> Any:
        return TimeSeriesFold(
            steps=1,
            initial_train_size=len(y) - n_test,
            refit=250,
            fixed_train_size=False,
            gap=0,
            allow_incomplete_fold=True,
            verbose=False,
        )

    t0, c0 = time.perf_counter(), time.process_time()
    results, _ = bayesian_search_forecaster(
        forecaster({}),
        y,
        cv(),
        search_space=lambda trial: suggest(trial, space),
        metric="mean_squared_error",
        n_trials=trials,
        random_state=seed,
        return_best=False,
        n_jobs=1,
        show_progress=False,
        suppress_warnings=True,
    )
    study_seconds, study_cpu = time.perf_counter() - t0, time.process_time() - c0
    best = dict(results.iloc[0]["params"])
    _, preds = backtesting_forecaster(
        forecaster(best), y, cv(), metric="mean_squared_error", n_jobs=1, show_progress=False
    )
    pred_col = "pred" if "pred" in preds.columns else preds.columns[-1]
    targets = preds.index.to_numpy()
    sc = score("skforecast", problem, targets, preds[pred_col].to_numpy())
    total = time.perf_counter() - t_start
    cpu = time.process_time() - cpu_start
    return Result(
        "skforecast + LightGBM",
        skforecast.__version__,
        trials,
        study_seconds,
        total,
        cpu,
        sc["rmse"],
        sc["zero_rmse"],
        sc["mean_fold_rmse"],
        best,
        [
            f"dropped from the space: {dropped}",
            "objective: pooled MSE over the 1,250 test days (bayesian_search_forecaster)",
            "no purge: TimeSeriesFold(gap=1) would forecast 2 steps ahead",
        ],
        {"fold_rmse": sc["fold_rmse"], "study_cpu": study_cpu},
    )


# ----------------------------------------------------------------------------- stockpipe


def stockpipe_result(
    problem: Problem, summary: dict[str, Any], wall: float | None, cpu: float | None
) -> Result:
    """The lightgbm-only competition's summary as a row (its backtest refits the winner)."""
    cand = next(c for c in summary["candidates"] if c["name"] == "lightgbm")
    bt = summary["backtest"]
    folds = bt["folds"]
    for f, m in zip(problem.folds, folds, strict=True):
        if (
            str(problem.dates[f.test_start]) != m["test_start"]
            or str(problem.dates[f.test_end]) != m["test_end"]
        ):
            raise SystemExit(f"stockpipe fold {f.fold} is not on the rebuilt test dates")
    versions = json.loads(summary.get("lineage", {}).get("package_versions") or "{}")
    return Result(
        "stockpipe (lightgbm candidate)",
        versions.get("stockpipe", ""),
        cand["n_trials"],
        cand["seconds"],
        wall if wall is not None else summary.get("seconds", float("nan")),
        cpu,
        bt["rmse"],
        bt["baselines"]["zero_return"]["rmse"],
        float(np.mean([f["rmse"] for f in folds])),
        cand["best_params"],
        [
            "40 declared features, SelectKBest (selector__k tuned), median imputer, scaler",
            f"median pruner: {cand.get('n_pruned', 0)} of {cand['n_trials']} trials pruned",
            "total = the whole `stockpipe train` command: MLflow tracking, backtest, register",
        ],
        {"fold_rmse": [f["rmse"] for f in folds]},
    )


def run_stockpipe(
    problem: Problem, trials: int, seed: int, bin_path: str, pruner: str | None
) -> Result:
    with tempfile.TemporaryDirectory(prefix="peers-stockpipe-") as tmp:
        proj = Path(tmp)
        shutil.copytree(ROOT / "conf" / "base", proj / "conf" / "base")
        shutil.copytree(ROOT / "data" / "sample", proj / "data" / "sample")
        local = proj / "conf" / "local"
        local.mkdir(parents=True)
        text = (ROOT / "conf" / "base" / "model_candidates.yaml").read_text()
        import yaml

        doc = yaml.safe_load(text)
        doc["candidates"] = [c for c in doc["candidates"] if c["name"] == "lightgbm"]
        (local / "model_candidates.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        if pruner is not None:
            (local / "training.yaml").write_text(yaml.safe_dump({"tuning": {"pruner": pruner}}))
        summary_path = proj / "summary.json"
        cmd = [
            bin_path, "train", "--config", str(proj / "conf"), "--trials", str(trials),
            "--seed", str(seed), "--quiet", "--tracking-uri", f"sqlite:///{proj}/mlflow.db",
            "--summary", str(summary_path),
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        summary = json.loads(summary_path.read_text())
    return stockpipe_result(problem, summary, wall, cpu)


# ----------------------------------------------------------------------------- report


def table(results: list[Result]) -> str:
    head = (
        "| tool | version | trials | study wall | wall per trial | study CPU per trial "
        "| job wall (total) | job CPU | RMSE | zero RMSE | RMSE / zero | mean fold RMSE |"
    )
    lines = [head, "|" + " --- |" * 12]
    for r in results:
        cpu = f"{r.cpu_seconds:.1f} s" if r.cpu_seconds is not None else "n/a"
        study_cpu = r.extra.get("study_cpu")
        per_cpu = f"{study_cpu / r.trials:.2f} s" if study_cpu is not None else "n/a"
        lines.append(
            f"| {r.tool} | {r.version} | {r.trials} | {r.study_seconds:.1f} s | "
            f"{r.per_trial:.2f} s | {per_cpu} | {r.total_seconds:.1f} s | {cpu} | "
            f"{r.rmse:.6f} | {r.zero_rmse:.6f} | {r.ratio:.4f} | {r.mean_fold_rmse:.6f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trials", type=int, default=15, help="Optuna trials per study (default 15)")
    ap.add_argument(
        "--peer", choices=["mlforecast", "skforecast", "stockpipe", "all"], default="all",
        help="which tool(s) to run; `all` includes stockpipe only with --stockpipe-bin",
    )  # fmt: skip
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "sample" / "NVDA.csv")
    ap.add_argument("--config", type=Path, default=ROOT / "conf", help="for the lightgbm space")
    ap.add_argument(
        "--folds-json", type=Path, help="`stockpipe folds --format json` to check against"
    )
    ap.add_argument("--n-folds", type=int, default=5)
    ap.add_argument("--test-size", type=int, default=250)
    ap.add_argument("--purge", type=int, default=1)
    ap.add_argument(
        "--warmup-rows", type=int, default=321,
        help="rows stockpipe drops for its features' warm-up (its train log says so); the peers "
        "start training on the same target",
    )  # fmt: skip
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--stockpipe-bin", help="a `stockpipe` executable to run the lightgbm study")
    ap.add_argument("--stockpipe-pruner", help="override tuning.pruner for the stockpipe run")
    ap.add_argument("--stockpipe-summary", type=Path, help="use this train summary instead")
    ap.add_argument("--stockpipe-wall", type=float, help="wall time of that run (seconds)")
    ap.add_argument("--stockpipe-cpu", type=float, help="CPU time of that run (seconds)")
    ap.add_argument("--verify-cv", action="store_true", help="time one mlforecast cross_validation")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)

    problem = load_problem(
        args.data, args.n_folds, args.test_size, args.purge, args.warmup_rows, args.folds_json
    )
    results: list[Result] = []
    want = {args.peer} if args.peer != "all" else {"mlforecast", "skforecast", "stockpipe"}
    load_before = os.getloadavg()
    if "stockpipe" in want:
        if args.stockpipe_summary is not None:
            summary = json.loads(args.stockpipe_summary.read_text())
            results.append(
                stockpipe_result(problem, summary, args.stockpipe_wall, args.stockpipe_cpu)
            )
        elif args.stockpipe_bin:
            results.append(
                run_stockpipe(
                    problem, args.trials, args.seed, args.stockpipe_bin, args.stockpipe_pruner
                )
            )
        elif args.peer == "stockpipe":
            ap.error("--peer stockpipe needs --stockpipe-bin or --stockpipe-summary")
    if "mlforecast" in want:
        results.append(run_mlforecast(problem, args.trials, args.seed, args.config, args.verify_cv))
    if "skforecast" in want:
        results.append(run_skforecast(problem, args.trials, args.seed, args.config))
    print(table(results))
    for r in results:
        print(f"\n{r.tool}: best {r.best_params}")
        for note in r.notes:
            print(f"  - {note}")
        if "cross_validation" in r.extra:
            print(f"  - cross_validation check: {r.extra['cross_validation']}")
    if args.json is not None:
        doc = {
            "python": sys.version.split()[0],
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "test_dates": [problem.asof_dates(problem.test_targets())[i] for i in (0, -1)],
            "results": [
                {**r.__dict__, "per_trial_seconds": r.per_trial, "ratio": r.ratio} for r in results
            ],
        }
        args.json.write_text(json.dumps(doc, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
