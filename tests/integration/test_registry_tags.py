"""The champion alias and the version's ``promoted`` tag agree, on a real sqlite registry.

Versions are registered ``promoted=false`` (as `train` does); a recorded alias move (train's
promotion, `models promote`, `models rollback`) tags the version after the alias moves, and
`models list` repairs a promotion cut short between the two.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest
from click.testing import CliRunner, Result

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.tracking.mlflow_adapter import MlflowRegistry

MODEL = "StocksPredictionModel"

# Real sqlite MLflow registries, several versions each (seconds per test).
pytestmark = pytest.mark.slow


@pytest.fixture
def registry(conf_dir: Path) -> MlflowRegistry:
    """The project's registry holding v1 and v2, both registered ``promoted=false``."""
    cfg = load_config(conf_dir)
    reg = MlflowRegistry(cfg.tracking_uri, MODEL)
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri)
    exp_id = client.create_experiment("tags", artifact_location=(conf_dir / "art").as_uri())
    for _ in range(2):
        run_id = client.create_run(exp_id).info.run_id
        reg.register(f"runs:/{run_id}/model", run_id, {"promoted": "false", "candidate": "x"})
    return reg


def _models(conf_dir: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["models", *args, "--config", str(conf_dir)])
    assert result.exit_code == 0, result.output
    return result


def _listed(conf_dir: Path) -> dict[str, dict[str, Any]]:
    result = _models(conf_dir, "list", "--format", "json")
    return {v["version"]: v for v in json.loads(result.stdout)}


def test_manual_promote_shows_in_models_list(conf_dir: Path, registry: MlflowRegistry) -> None:
    registry.set_alias("champion", "2", record=True)  # what train does for a promotion
    _models(conf_dir, "promote", "1")
    listed = _listed(conf_dir)
    assert listed["1"]["aliases"] == ["champion"]
    assert listed["1"]["tags"]["promoted"] == "true"
    assert registry.alias_history("champion") == ["2", "1"]


def test_only_a_recorded_move_tags_the_version(registry: MlflowRegistry) -> None:
    registry.set_alias("challenger", "2")  # a challenger is not a promotion
    assert registry.version_tags("2")["promoted"] == "false"
    registry.set_alias("champion", "1", record=True)
    assert registry.version_for_alias("champion") == "1"
    assert registry.version_tags("1")["promoted"] == "true"


def test_rollback_tags_the_version_it_returns_to(registry: MlflowRegistry) -> None:
    registry.set_alias("champion", "1", record=True)
    registry.set_alias("champion", "2", record=True)
    client = mlflow.MlflowClient(registry_uri=registry.uri)
    client.set_model_version_tag(MODEL, "1", "promoted", "false")  # e.g. tagged by older code
    assert registry.rollback("champion") == "1"
    assert registry.version_tags("1")["promoted"] == "true"
    assert registry.alias_history("champion") == ["1"]


def test_models_list_repairs_a_promotion_cut_short(
    conf_dir: Path, registry: MlflowRegistry
) -> None:
    # A process killed right after the alias moved, before the tag: the alias leads.
    client = mlflow.MlflowClient(registry_uri=registry.uri)
    client.set_registered_model_alias(MODEL, "champion", "2")
    assert registry.version_tags("2")["promoted"] == "false"
    listed = _listed(conf_dir)
    assert listed["2"]["tags"]["promoted"] == "true"
    assert listed["1"]["tags"]["promoted"] == "false"
    assert registry.version_tags("2")["promoted"] == "true"
    assert registry.reconcile("champion") is None  # nothing left to repair


def test_reconcile_without_a_champion_does_nothing(registry: MlflowRegistry) -> None:
    assert registry.reconcile("champion") is None
    assert registry.version_tags("1")["promoted"] == "false"
