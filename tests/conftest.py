"""Shared fixtures: a private copy of the project config pointing every store at tmp_path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from support import FAST_CANDIDATES, REPO, SAMPLE, write_yaml

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def nvda_csv() -> Path:
    return SAMPLE / "NVDA.csv"


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    """conf/base copied into tmp, with conf/local sending data, warehouse and MLflow to tmp."""
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf" / "base", conf / "base")
    write_yaml(
        conf / "local" / "data.yaml",
        {
            "path": str(SAMPLE / "NVDA.csv"),
            "benchmark_path": str(SAMPLE / "SPY.csv"),
            "warehouse": str(tmp_path / "warehouse.duckdb"),
        },
    )
    write_yaml(
        conf / "local" / "tracking.yaml",
        {
            "uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "artifact_location": str(tmp_path / "artifacts"),
        },
    )
    write_yaml(
        conf / "local" / "training.yaml",
        {
            "n_trials": 2,
            "summary_path": str(tmp_path / "summary.json"),
        },
    )
    write_yaml(conf / "local" / "model_candidates.yaml", FAST_CANDIDATES)
    return conf
