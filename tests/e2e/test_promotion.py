"""The promotion gate and `models list|promote|rollback` on a real MLflow sqlite registry.

One module-scoped project trains four times through the CLI, recording the registry after
each run: a first model, a worse one (challenger), a better one, and a worse one forced in.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.models
import pytest
from click.testing import CliRunner, Result
from support import SAMPLE, make_project, sqlite_uri, write_yaml

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore
from pipeline.features.columns import feature_columns
from pipeline.features.spec import build_feature_defs, total_warmup
from pipeline.tracking.mlflow_adapter import MlflowRegistry
from pipeline.training import lineage
from pipeline.training.folds import fold_spec, folds_hash

pytestmark = pytest.mark.slow

MODEL = "StocksPredictionModel"
# rmse on the sample data: FIRST 0.03219, WEAK 0.04536 (overfit), BETTER 0.03215
FIRST = [{"name": "ridge", "estimator": "ridge", "params": {"alpha": 1.0}}]
WEAK = [
    {
        "name": "lightgbm",
        "estimator": "lightgbm",
        "params": {
            "n_estimators": 50,
            "learning_rate": 1.0,
            "num_leaves": 63,
            "min_child_samples": 5,
        },
    }
]
BETTER = [{"name": "ridge", "estimator": "ridge", "params": {"alpha": 1e4}}]
STEPS: list[tuple[str, list[dict[str, Any]], tuple[str, ...]]] = [
    ("first", FIRST, ()),
    ("worse", WEAK, ()),
    ("better", BETTER, ()),
    ("forced", WEAK, ("--force-promote",)),
]


def _invoke(conf: Path, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--config", str(conf)])


def _git(root: Path, *args: str) -> str:
    cmd = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("promotion")
    summary, uri = root / "summary.json", sqlite_uri(root)
    training = {"n_trials": 1, "summary_path": str(summary)}
    conf = make_project(root, training=training, candidates=None)  # each step writes its own
    _git(root, "init", "-q")  # the project is a checkout; conf/ stays untracked (not dirty)
    (root / "README").write_text("project\n")
    _git(root, "add", "README")
    _git(root, "commit", "-q", "-m", "init")

    registry = MlflowRegistry(uri, MODEL)
    out: dict[str, Any] = {
        "root": root,
        "conf": conf,
        "uri": uri,
        "head": _git(root, "rev-parse", "HEAD"),
    }
    for name, candidates, flags in STEPS:
        write_yaml(conf / "local" / "model_candidates.yaml", {"candidates": candidates})
        result = _invoke(conf, "train", "--quiet", *flags)
        assert result.exit_code == 0, result.output
        out[name] = {
            "summary": json.loads(summary.read_text()),
            "config": load_config(conf),
            "aliases": {a: registry.version_for_alias(a) for a in ("champion", "challenger")},
            "history": registry.alias_history("champion"),
        }
    return out


def _version(story: dict[str, Any], version: str) -> Any:
    client = mlflow.MlflowClient(tracking_uri=story["uri"], registry_uri=story["uri"])
    return client.get_model_version(MODEL, version)


def test_first_model_is_promoted_with_lineage(story: dict[str, Any]) -> None:
    step = story["first"]
    champ = step["summary"]["champion"]
    assert champ["version"] == "1" and champ["promoted"] is True and champ["alias"] == "champion"
    assert "no incumbent" in champ["reason"]
    assert step["aliases"] == {"champion": "1", "challenger": None}
    assert step["history"] == ["1"]

    mv = _version(story, "1")
    tags, cfg = mv.tags, step["config"]
    assert mv.run_id == champ["run_id"]
    assert tags["data_sha256"] == hashlib.sha256((SAMPLE / "NVDA.csv").read_bytes()).hexdigest()
    assert tags["config_hash"] == lineage.config_hash(cfg)
    assert tags["feature_spec_hash"] == lineage.feature_spec_hash(cfg.model)
    store = DuckDBStore(":memory:")
    store.upsert(FileSource(SAMPLE / "NVDA.csv").load())
    columns = feature_columns(cfg.model)
    warmup = total_warmup([d for d in build_feature_defs(cfg.model.features) if d.name in columns])
    spec = fold_spec(cfg.training.folds, cfg.model.target.horizon, warmup=warmup)
    assert tags["folds_hash"] == folds_hash(store.folds(("NVDA",), spec))
    assert tags["git_commit"] == story["head"]
    assert tags["seed"] == "42"
    versions = json.loads(tags["package_versions"])
    for dist in ("mlflow", "optuna", "scikit-learn", "numpy", "polars"):
        assert versions[dist] == metadata.version(dist)
    assert tags["primary_metric"] == "rmse" and tags["candidate"] == "ridge"
    assert float(tags["rmse"]) == pytest.approx(champ["primary_value"], rel=1e-7)
    assert tags["promoted"] == "true" and tags["force_promote"] == "false"
    for words in ("rmse", "mae", "directional accuracy", f"{champ['primary_value']:.6g}"):
        assert words in mv.description

    mlflow.set_tracking_uri(story["uri"])
    info = mlflow.models.get_model_info(f"models:/{MODEL}/1")
    assert info.signature is not None and "close" in info.signature.inputs.input_names()
    assert info.saved_input_example_info is not None
    example = mlflow.models.Model.load(f"models:/{MODEL}/1").load_input_example()
    assert len(example) > int(tags["warmup_rows"])


def test_worse_model_becomes_challenger(story: dict[str, Any]) -> None:
    first = story["first"]["summary"]["champion"]
    champ = story["worse"]["summary"]["champion"]
    assert champ["version"] == "2" and champ["promoted"] is False
    assert champ["alias"] == "challenger" and champ["candidate"] == "lightgbm"
    # the incumbent re-evaluated on the same folds scores what it scored when trained
    assert champ["incumbent_version"] == "1"
    assert champ["incumbent_value"] == pytest.approx(first["primary_value"], rel=1e-9)
    assert champ["primary_value"] > first["primary_value"]
    assert champ["reason"].startswith(
        f"did not beat incumbent v1 on rmse: {champ['primary_value']:.6g} vs "
        f"{first['primary_value']:.6g}"
    )
    assert story["worse"]["aliases"] == {"champion": "1", "challenger": "2"}
    assert story["worse"]["history"] == ["1"]
    assert _version(story, "2").tags["promoted"] == "false"


def test_better_model_is_promoted(story: dict[str, Any]) -> None:
    first = story["first"]["summary"]["champion"]
    champ = story["better"]["summary"]["champion"]
    assert champ["version"] == "3" and champ["promoted"] is True and champ["alias"] == "champion"
    assert champ["primary_value"] < first["primary_value"]
    assert champ["reason"].startswith("beat incumbent v1 on rmse")
    assert story["better"]["aliases"] == {"champion": "3", "challenger": "2"}
    assert story["better"]["history"] == ["1", "3"]


def test_force_promote_moves_champion_and_is_recorded(story: dict[str, Any]) -> None:
    champ = story["forced"]["summary"]["champion"]
    assert champ["version"] == "4" and champ["promoted"] is True and champ["forced"] is True
    assert champ["primary_value"] > story["better"]["summary"]["champion"]["primary_value"]
    assert "--force-promote" in champ["reason"]
    assert story["forced"]["aliases"] == {"champion": "4", "challenger": "2"}
    assert story["forced"]["history"] == ["1", "3", "4"]
    assert _version(story, "4").tags["force_promote"] == "true"


def test_models_list_json(story: dict[str, Any]) -> None:
    result = _invoke(story["conf"], "models", "list", "--format", "json")
    assert result.exit_code == 0, result.output
    versions = {v["version"]: v for v in json.loads(result.stdout)}
    assert list(versions) == ["4", "3", "2", "1"]
    assert versions["4"]["aliases"] == ["champion"] and versions["2"]["aliases"] == ["challenger"]
    assert versions["3"]["aliases"] == [] and versions["1"]["aliases"] == []
    assert versions["4"]["tags"]["force_promote"] == "true"
    assert [versions[v]["tags"]["candidate"] for v in "4321"] == [
        "lightgbm",
        "ridge",
        "lightgbm",
        "ridge",
    ]
    assert all(v["tags"]["data_sha256"] and v["run_id"] for v in versions.values())


def test_promote_alias_and_rollback(story: dict[str, Any]) -> None:
    conf, registry = story["conf"], MlflowRegistry(story["uri"], MODEL)
    result = _invoke(conf, "models", "promote", "3", "--alias", "production")
    assert result.exit_code == 0, result.output
    assert f"{MODEL}@production -> v3" in result.output
    assert registry.version_for_alias("production") == "3"
    assert registry.version_for_alias("champion") == "4"

    for expected in ("3", "1"):
        result = _invoke(conf, "models", "rollback")
        assert result.exit_code == 0, result.output
        assert f"rolled back to v{expected}" in result.output
        assert registry.version_for_alias("champion") == expected

    for alias in ("champion", "production"):
        result = _invoke(conf, "models", "rollback", "--alias", alias)
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
        assert f"{MODEL}@{alias} has no previous version to roll back to" in result.output
        assert "Traceback" not in result.output
    assert registry.version_for_alias("champion") == "1"


def test_promote_unknown_version_fails_cleanly(story: dict[str, Any]) -> None:
    result = _invoke(story["conf"], "models", "promote", "99")
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "99" in result.output and "Traceback" not in result.output
