"""Lineage of a registered model: which data, config, features, folds and code made it."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path

from pipeline.features.columns import feature_columns
from pipeline.settings import ModelConfig, StockpipeConfig, TrainingConfig
from pipeline.training.plan import TrainingPlan

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
    """Stable hash of the resolved configuration (where it was read from excluded).

    It takes the whole configuration on purpose: it is the fingerprint of the whole, so any
    section changing changes it.
    """
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


def study_prefix(model: ModelConfig, training: TrainingConfig, plan: TrainingPlan) -> str:
    """Default study name: the same problem (data, features, folds, objective) resumes."""
    doc = [
        plan.inputs.batch.sha256,
        plan.inputs.benchmark_sha256,
        feature_spec_hash(model),
        plan.layout.hash,
        training.seed,
        training.tuning.primary_metric,
    ]
    return "stockpipe-" + hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:12]


def data_source(plan: TrainingPlan) -> str:
    """The file (or ``{ticker}`` pattern) the panel was read from; "" when it was read from
    raw snapshots, whose ids then say everything (a batch read from snapshots carries them)."""
    batch = plan.inputs.batch
    return "" if batch.snapshots else batch.source


def lineage_tags(
    plan: TrainingPlan,
    study: str,
    snapshots: tuple[list[str], list[str]],
    model: ModelConfig,
    seed: int,
    cfg_hash: str,
    root: Path,
) -> dict[str, str]:
    """What made the model, as tags: data, benchmark, config, features, folds, code, study.

    ``snapshots`` are the raw snapshot ids of the panel and of the benchmark file; ``cfg_hash``
    is :func:`config_hash` of the whole configuration, ``root`` the project checkout.
    ``tickers``, ``snapshot_ids`` and ``data_source`` are how `backtest`, `monitor` and
    `score` find the model's own data (``pipeline.bootstrap.model_data``).
    """
    inputs = plan.inputs
    return {
        "data_source": data_source(plan),
        "data_sha256": inputs.batch.sha256,
        "benchmark_sha256": inputs.benchmark_sha256,
        "benchmark": inputs.benchmark or "",
        "config_hash": cfg_hash,
        "feature_spec_hash": feature_spec_hash(model),
        "folds_hash": plan.layout.hash,
        "git_commit": git_commit(root),
        "seed": str(seed),
        "package_versions": package_versions(),
        "tickers": ",".join(inputs.tickers),  # only tickers that contributed rows
        "skipped_tickers": ",".join(plan.skipped),
        # family:missing columns, e.g. "natr:high+low;obv_ratio:volume" (close-only data)
        "features_left_out": ";".join(f"{f}:{'+'.join(c)}" for f, c in plan.left_out.items()),
        "horizon": str(plan.horizon),
        "study_name": study,
        "snapshot_ids": ",".join(snapshots[0]),
        "benchmark_snapshot_ids": ",".join(snapshots[1]),
    }
