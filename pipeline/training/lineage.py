"""Lineage of a registered model: which data, config, features, folds and code made it."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path

from pipeline.model.pipeline import feature_columns
from pipeline.settings import ModelConfig, StockpipeConfig

PACKAGES = (
    "stockpipe",
    "polars",
    "duckdb",
    "scikit-learn",
    "lightgbm",
    "xgboost-cpu",
    "xgboost",
    "optuna",
    "mlflow",
    "numpy",
    "pandas",
)


def _sha(doc: object) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_hash(cfg: StockpipeConfig) -> str:
    """Stable hash of the resolved configuration (where it was read from excluded)."""
    return _sha(cfg.model_dump(mode="json", exclude={"project_root", "config_dir"}))


def feature_spec_hash(model_cfg: ModelConfig) -> str:
    """Hash of the feature families and the selected columns: same hash, same inputs."""
    return _sha(
        {
            "features": model_cfg.features.model_dump(mode="json"),
            "columns": feature_columns(model_cfg),
        }
    )


def git_commit(root: Path) -> str:
    """HEAD of the project checkout, with '-dirty' if it has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            check=True,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def package_versions() -> str:
    """JSON of the versions of the packages that shape a model's numbers."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return json.dumps(found, sort_keys=True)
