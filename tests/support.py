"""Helpers shared by test modules (conftest.py holds only fixtures).

Importable from tests/unit, tests/integration and tests/e2e: pyproject.toml puts tests/ on the
path (``pythonpath = ["tests"]``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import optuna
import polars as pl
import pytest
import yaml
from click.testing import CliRunner, Result
from optuna.trial import FrozenTrial
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from pipeline.data.readers import FileSource
from pipeline.domain import LoadedModel
from pipeline.features.engine import add_target, collect
from pipeline.features.spec import (
    BENCH_CLOSE,
    Bollinger,
    Calendar,
    CrossSection,
    Ewm,
    FeaturesConfig,
    Lags,
    Macd,
    Market,
    Returns,
    Rolling,
    Stochastic,
    Windowed,
)
from pipeline.model.transformer import PolarsFeatures

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
TICKERS = ("NVDA", "SPY", "QQQ")  # the sample panel
T = TypeVar("T")
# The installed console script (`python -m pipeline.cli` does not work: no __main__).
STOCKPIPE = Path(sys.executable).with_name("stockpipe")

# Every per-ticker family and every engine path (point, shift, whole-column window, hoisted
# kernel, .over), plus the shipped std/skew: test_engine.py and test_engine_paths.py.
EVERY_PATH = FeaturesConfig(
    simple_return=Returns(windows=(1, 3)),
    lag=Lags(of="volume", lags=(1, 7)),
    rolling_std=Rolling(windows=(5, 60)),
    rolling_min=Rolling(windows=(5,)),
    rolling_max=Rolling(of="close", windows=(10,)),
    rolling_sum=Rolling(windows=(3,)),
    rolling_skew=Rolling(windows=(20,)),
    ewm_mean=Ewm(of="close", spans=(5,)),
    ewm_vol=Ewm(spans=(10,)),
    rsi=Windowed(windows=(14,)),
    macd=Macd(),
    bollinger=Bollinger(),
    natr=Windowed(windows=(14,)),
    stochastic=Stochastic(),
    obv_ratio=Windowed(windows=(20,)),
    dist_max=Rolling(of="close", windows=(60,)),
    dist_min=Rolling(of="close", windows=(60,)),
    volume_ratio=Windowed(windows=(5,)),
    calendar=Calendar(),
    market=Market(windows=(20,)),
)


# A small, fast competition for tests: two candidates, tiny models.
FAST_CANDIDATES = {
    "candidates": [
        {
            "name": "lightgbm",
            "estimator": "lightgbm",
            "n_trials": 2,
            "params": {"n_estimators": 40, "num_leaves": 7},
            "space": {
                "learning_rate": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
                "selector__k": {"type": "int", "low": 5, "high": 20},
            },
        },
        {
            "name": "ridge",
            "estimator": "ridge",
            "n_trials": 2,
            "space": {"alpha": {"type": "float", "low": 0.1, "high": 100.0, "log": True}},
        },
    ]
}
# Every feature family enabled (tests assert it stays so), for the look-ahead tests and the guard.
ALL_FAMILIES = FeaturesConfig(
    simple_return=Returns(windows=(1, 5, 20)),
    rolling_min=Rolling(of="low", windows=(10,)),
    rolling_max=Rolling(of="high", windows=(10,)),
    rolling_sum=Rolling(of="volume", windows=(5,)),
    rolling_skew=Rolling(of="logret_1", windows=(20,)),
    ewm_mean=Ewm(of="close", spans=(10,)),
    ewm_vol=Ewm(of="logret_1", spans=(10,)),
    rsi=Windowed(windows=(14,)),
    macd=Macd(fast=12, slow=26, signal=9),
    bollinger=Bollinger(windows=(20,), k=2.0),
    natr=Windowed(windows=(14,)),
    stochastic=Stochastic(windows=(14,), smooth=3),
    obv_ratio=Windowed(windows=(20,)),
    dist_max=Rolling(of="close", windows=(60,)),
    dist_min=Rolling(of="close", windows=(60,)),
    volume_ratio=Windowed(windows=(20,)),
    calendar=Calendar(),
    market=Market(benchmark="SPY", windows=(20,)),
    cross_section=CrossSection(of=("logret_5", "rsi_14", "beta_spy_20")),
)

# Candidates of the tests where several processes share one study (workers, server): lightgbm's
# trials take long enough that the processes are at them at the same time.
STUDY_LIGHTGBM = {
    "name": "lightgbm",
    "estimator": "lightgbm",
    "params": {"n_estimators": 50, "num_leaves": 15},
    "space": {
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
        "selector__k": {"type": "int", "low": 5, "high": 20},
    },
}
STUDY_RIDGE = {
    "name": "ridge",
    "estimator": "ridge",
    "space": {"alpha": {"type": "float", "low": 0.1, "high": 1e4, "log": True}},
}


def write_yaml(path: Path, doc: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(doc)), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- project config


def overlay(conf: Path, section: str, **values: Any) -> None:
    """Deep-update conf/local/<section>.yaml, keeping what is already written there."""
    path = conf / "local" / f"{section}.yaml"
    doc = yaml.safe_load(path.read_text()) if path.is_file() else {}
    for key, value in values.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    write_yaml(path, doc)


def sqlite_uri(root: Path) -> str:
    """The tracking URI ``make_project`` gives a project under ``root``."""
    return f"sqlite:///{root / 'mlflow.db'}"


def make_project(
    root: Path,
    name: str = "conf",
    *,
    data: Mapping[str, Any] | None = None,
    tracking: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    candidates: Mapping[str, Any] | None = FAST_CANDIDATES,
    envs: tuple[str, ...] = (),
) -> Path:
    """A private copy of the project config at ``root / name``; returns that folder.

    conf/base (and each conf/<env> in ``envs``) is copied; conf/local sends everything to
    ``root``: data is the NVDA sample with the SPY benchmark, the warehouse is
    ``root/warehouse.duckdb``, MLflow is ``sqlite_uri(root)`` with artifacts in
    ``root/artifacts``. ``data`` and ``tracking`` are merged over those (a None value drops
    the key); ``training`` is written as training.yaml when given; ``candidates`` is
    model_candidates.yaml (None: the shipped candidates).
    """
    conf = root / name
    shutil.copytree(REPO / "conf" / "base", conf / "base")
    for env in envs:
        shutil.copytree(REPO / "conf" / env, conf / env)
    local = conf / "local"
    data_doc = {
        "path": str(SAMPLE / "NVDA.csv"),
        "benchmark_path": str(SAMPLE / "SPY.csv"),
        "warehouse": str(root / "warehouse.duckdb"),
        **(data or {}),
    }
    write_yaml(local / "data.yaml", {k: v for k, v in data_doc.items() if v is not None})
    tracking_doc = {
        "uri": sqlite_uri(root),
        "artifact_location": str(root / "artifacts"),
        **(tracking or {}),
    }
    write_yaml(local / "tracking.yaml", {k: v for k, v in tracking_doc.items() if v is not None})
    if training is not None:
        write_yaml(local / "training.yaml", training)
    if candidates is not None:
        write_yaml(local / "model_candidates.yaml", candidates)
    return conf


# --------------------------------------------------------------------------- processes


def spawn_stockpipe(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """``stockpipe *args`` started in ``cwd`` (MLflow telemetry off), stdout and stderr piped."""
    return subprocess.Popen(
        [str(STOCKPIPE), *args],
        cwd=cwd,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def invoke_ok(*args: str) -> Result:
    """``stockpipe *args`` in this process (click's runner); the command must exit 0."""
    from pipeline.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def run_stockpipe(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``stockpipe *args`` run to the end in ``cwd``; its output captured, its exit code kept."""
    return subprocess.run(
        [str(STOCKPIPE), *args],
        cwd=cwd,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def shared_study_trials(study: optuna.Study, budget: int, counted: int) -> list[FrozenTrial]:
    """The trials of a study that 3 processes (2 workers, the coordinator) shared, checked.

    Each trial number once, every trial finished, the budget reached, and ``counted`` (what the
    coordinator reports) equal to them all. MaxTrialsCallback stops each process once the
    budget is reached, so trials still running elsewhere at that moment finish too: at most
    one extra per other process.
    """
    trials = study.trials
    assert [t.number for t in trials] == list(range(len(trials)))  # each number once
    assert all(t.state.is_finished() for t in trials)
    assert budget <= len(trials) <= budget + 2
    assert counted == len(trials)  # the coordinator counts every process's trials
    return trials


# --------------------------------------------------------------------------- sample data


def sample_prices(*tickers: str) -> pl.DataFrame:
    """The sample bars of ``tickers`` (default: the panel) as the reader loads them."""
    return pl.concat([FileSource(SAMPLE / f"{t}.csv").load().frame for t in tickers or TICKERS])


def with_bench(prices: pl.DataFrame, bench: pl.DataFrame | None = None) -> pl.DataFrame:
    """What the warehouse macro does: the benchmark's (SPY's) last close at or before each date."""
    bench = sample_prices("SPY") if bench is None else bench
    closes = bench.select("date", pl.col("close").alias(BENCH_CLOSE)).sort("date")
    order = pl.int_range(pl.len()).alias("__row")
    joined = prices.with_columns(order).sort("date").join_asof(closes, on="date")
    return joined.sort("__row").drop("__row")


def nvda_rows(rows: int | None = None, ticker: str = "NVDA") -> pl.DataFrame:
    """The last ``rows`` lines of the NVDA sample file as read (all by default), as ``ticker``."""
    frame = pl.read_csv(SAMPLE / "NVDA.csv")
    frame = frame if rows is None else frame.tail(rows)
    return frame.with_columns(pl.lit(ticker).alias("ticker"))


CSV_HEADER = "date,open,high,low,close,volume\n"


def price_csv(
    tmp_path: Path, lines: list[str], header: str = CSV_HEADER, name: str = "ACME.csv"
) -> Path:
    """A price file ``tmp_path/name``: ``header`` then one line per item of ``lines``."""
    path = tmp_path / name
    path.write_text(header + "".join(line + "\n" for line in lines))
    return path


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    frame.write_csv(path)
    return path


# --------------------------------------------------------------------------- a fitted model


def fitted_model(name: str = "M", version: str = "1") -> LoadedModel:
    """The registered pipeline's shape (features -> imputer -> Ridge), fitted on the NVDA sample."""
    frame = sample_prices("NVDA")
    labelled = collect(add_target(frame.lazy(), 1)).drop_nulls("target")
    pipe = Pipeline(
        [
            ("features", PolarsFeatures(FeaturesConfig().model_dump_json())),
            ("impute", SimpleImputer()),
            ("model", Ridge()),
        ]
    )
    pipe.fit(labelled.drop("target").to_pandas(), labelled["target"].to_numpy())
    warmup = pipe.named_steps["features"].warmup_
    return LoadedModel(predictor=pipe, name=name, version=version, warmup=warmup, horizon=1)


def request_bars(n: int = 6, ticker: str = "ACME", **extra: Any) -> list[dict[str, Any]]:
    """``n`` daily bars of one ticker as a ``POST /predict`` body lists them (flat prices)."""
    start = dt.date(2024, 1, 2)
    return [
        {
            "ticker": ticker,
            "date": str(start + dt.timedelta(days=i)),
            "open": 10.0,
            "high": 11.0,
            "low": 9.0,
            "close": 10.5,
            "volume": 100.0,
            **extra,
        }
        for i in range(n)
    ]


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str | Callable[[], str],
    interval: float = 0.01,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    The one deadline loop of the tests. ``timeout`` only bounds a hang, it is never a timing
    assertion; when it passes the test fails naming ``what`` (called first when it is a
    function, so the message shows the state at the end, e.g. the last ``/ready`` answer).
    """
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() >= deadline:
            pytest.fail(
                f"gave up after {timeout:g} s waiting for {what() if callable(what) else what}"
            )
        time.sleep(interval)
    return result


def wait_until_ready(client: Any, deadline_seconds: float = 30.0) -> None:
    """Poll ``GET /ready`` on a test client until it is 200 (its last answer if it never is)."""
    wait_until(
        lambda: client.get("/ready").status_code == 200,
        deadline_seconds,
        lambda: f"/ready to answer 200; it said {client.get('/ready').text}",
    )


def interleaved_with_bench(panel: pl.DataFrame) -> pl.DataFrame:
    """``panel`` with the benchmark's close, rows in (date, ticker) order so sorting is tested."""
    return with_bench(panel).sort("date", "ticker")


def postgres_problem() -> str | None:
    """Why the PostgreSQL the server tests need is unusable, or None."""
    from tracking_server import PG_CONNINFO

    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed: pip install -e '.[test]'"
    try:
        with psycopg.connect(PG_CONNINFO) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) unreachable: {exc}"
    return None


@contextlib.contextmanager
def fresh_databases(kind: str) -> Iterator[dict[str, str]]:
    """A fresh MLflow and a fresh Optuna PostgreSQL database (``mlflow``, ``optuna`` keys),
    dropped afterwards; skips the test when PostgreSQL is unusable."""
    import pytest
    from tracking_server import create_database, drop_database

    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    tag = uuid.uuid4().hex[:10]
    stem = f"stockpipe_test_{kind}"
    names = {"mlflow": f"{stem}_{tag}", "optuna": f"{stem}_optuna_{tag}"}
    created: list[str] = []
    try:
        for name in names.values():
            create_database(name)
            created.append(name)
        yield names
    finally:
        for name in created:
            drop_database(name)
