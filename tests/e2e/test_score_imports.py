"""`stockpipe score` imports only what scoring needs (issue 15: `score` in seconds).

Each command imports its own adapters when it runs, so `score` with a scikit-learn model pays
neither for training (optuna, the matplotlib reports, the rich progress display) nor for
xgboost, and `--help` for none of the heavy libraries. Checked in a fresh interpreter with
``-X importtime``, which names, for every module, the module that imported it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import STOCKPIPE, sample_prices

from pipeline.config import load_config
from pipeline.domain import LoadedModel

NEVER_IN_SCORE = ("optuna", "matplotlib", "xgboost", "rich")
# scikit-learn >= 1.9 imports rich itself (sklearn.callback's progress bar, whenever rich is
# installed), so `import sklearn` alone pulls it in: it is allowed only through scikit-learn,
# never because one of our modules imported it.
ALLOWED_IMPORTERS = {"rich": ("sklearn.",)}
NEVER_IN_HELP = ("mlflow", "polars", "duckdb", "sklearn", "pandas", "numpy")


def importers(stderr: str) -> dict[str, set[str]]:
    """For each top-level package ``-X importtime`` lists: the modules outside it that
    imported one of its modules ("" when imported at top level or from a function).

    The report prints a module after everything it imported, indented two spaces per level,
    so a module's importer is the next line printed one level less indented.
    """
    entries: list[tuple[int, str]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        name = line.split("|", 2)[2]
        entries.append(((len(name) - len(name.lstrip()) - 1) // 2, name.strip()))
    found: dict[str, set[str]] = {}
    for i, (depth, name) in enumerate(entries):
        top = name.split(".")[0]
        parent = next((n for d, n in entries[i + 1 :] if d < depth), "")
        if parent.split(".")[0] != top:  # where the package was entered from
            found.setdefault(top, set()).add(parent)
    return found


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``stockpipe *args`` in a fresh interpreter with ``-X importtime``."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", str(STOCKPIPE), *args],
        cwd=cwd,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def forbidden(found: dict[str, set[str]], packages: tuple[str, ...]) -> dict[str, set[str]]:
    """The ``packages`` imported, with the importers not in ``ALLOWED_IMPORTERS``."""
    bad = {}
    for package in packages:
        allowed = ALLOWED_IMPORTERS.get(package, ())
        why = {p for p in found.get(package, set()) if not (allowed and p.startswith(allowed))}
        if why:
            bad[package] = why
    return bad


@pytest.mark.slow  # several processes: seconds each
def test_score_with_a_sklearn_model_imports_no_training_ui_or_xgboost(
    conf_dir: Path, tmp_path: Path, ridge_model: LoadedModel
) -> None:
    from pipeline.tracking.mlflow_adapter import MlflowRegistry, MlflowTracker

    cfg = load_config(conf_dir)
    tracker = MlflowTracker(cfg.tracking_uri, "imports", tmp_path / "artifacts")
    registry = MlflowRegistry(cfg.tracking_uri, cfg.tracking.registered_model)
    example = sample_prices("NVDA").tail(ridge_model.warmup + 5).to_pandas()
    with tracker.start_run("fit") as run_:
        uri = run_.log_model(ridge_model.predictor, example, {})
        version = registry.register(uri, run_.run_id, {"promoted": "true", "horizon": "1"})
    registry.set_alias(cfg.tracking.champion_alias, version, record=True)

    out = tmp_path / "p.parquet"
    done = run(tmp_path, "score", "--config", str(conf_dir), "--output", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.exists() and "wrote 1 row(s)" in done.stdout
    found = importers(done.stderr)
    assert {"mlflow", "sklearn", "polars"} <= found.keys()  # the report was read
    assert forbidden(found, NEVER_IN_SCORE) == {}


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    done = run(tmp_path, "--help")
    assert done.returncode == 0 and "score" in done.stdout, done.stderr[-3000:]
    assert forbidden(importers(done.stderr), NEVER_IN_HELP) == {}


def test_importers_names_where_each_package_was_entered() -> None:
    report = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:        1 |          1 |       rich.progress",
            "import time:        1 |          2 |     sklearn.callback",
            "import time:        1 |          3 |   sklearn",
            "import time:        1 |          1 |     optuna.trial",
            "import time:        1 |          2 |   optuna",
            "import time:        1 |          3 | pipeline.training.tuning",
            "import time:        1 |          9 | pipeline.cli",
        ]
    )
    found = importers(report)
    assert found["rich"] == {"sklearn.callback"} and found["optuna"] == {"pipeline.training.tuning"}
    assert forbidden(found, ("rich", "optuna")) == {"optuna": {"pipeline.training.tuning"}}
