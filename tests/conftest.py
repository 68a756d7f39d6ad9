"""Shared fixtures for tests/unit, tests/integration and tests/e2e (helpers are in support.py).

conf_dir: a private copy of the project config pointing every store at tmp_path. The sample
prices and the fitted model are built once per session: tests only read them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest

# The shared helpers assert too: rewrite their asserts like the tests' (before importing them).
pytest.register_assert_rewrite("support", "fakes", "damage")

from support import SAMPLE, fitted_model, make_project, sample_prices  # noqa: E402

from pipeline.domain import LoadedModel  # noqa: E402

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
RELOAD_THREAD = "stockpipe-reload"  # pipeline.serving.reload names its threads so
LEAK_GRACE_SECONDS = 5.0


@pytest.fixture(autouse=True)
def no_model_follower_outlives_its_test() -> Iterator[None]:
    """A model follower left polling keeps logging into later tests' output (it made an
    unrelated test flaky once): every test must stop the followers it starts."""
    before = {t for t in threading.enumerate() if t.name.startswith(RELOAD_THREAD)}
    yield
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    for thread in threading.enumerate():
        if thread.name.startswith(RELOAD_THREAD) and thread not in before:
            thread.join(max(0.0, deadline - time.monotonic()))
            assert not thread.is_alive(), f"{thread.name} still polls after the test"


@pytest.fixture
def nvda_csv() -> Path:
    return SAMPLE / "NVDA.csv"


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    """conf/base copied into tmp, with conf/local sending data, warehouse and MLflow to tmp."""
    training = {"n_trials": 2, "summary_path": str(tmp_path / "summary.json")}
    return make_project(tmp_path, training=training)


@pytest.fixture(scope="session")
def panel() -> pl.DataFrame:
    """The NVDA, SPY and QQQ sample bars, one ticker after the other."""
    return sample_prices()


@pytest.fixture(scope="session")
def nvda() -> pl.DataFrame:
    """The NVDA sample bars."""
    return sample_prices("NVDA")


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB, the SQL oracle of the feature tests."""
    connection = duckdb.connect(":memory:")
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def ridge_model() -> LoadedModel:
    """features -> imputer -> Ridge fitted on the NVDA sample, registered as M v1."""
    return fitted_model()
