"""A registration killed (SIGKILL) before its alias moved is settled by the next command.

Registration records its intent on the version as it is created (``stockpipe.registration=
pending``, the alias it is to get, the gate's verdict and the incumbent it judged) and marks it
``complete`` once the alias has moved. Each test kills a real process with SIGKILL at one step
of that sequence on a real sqlite registry, then runs what a later ``train`` (the tracker's
``check``) or ``models list`` runs, and reads the aliases and tags back.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.tracking.mlflow_adapter import MlflowTracker
from pipeline.tracking.registry import (
    ABANDONED,
    COMPLETE,
    PENDING,
    REGISTRATION_TAG,
    SETTLED_TAG,
    MlflowRegistry,
    intent_tags,
)

MODEL = "StocksPredictionModel"

# argv: uri, model, alias, promote (true/false), incumbent, step. Registers a version with
# its intent as `register()` does, optionally moves the alias ("alias"), then SIGKILLs itself.
_KILLED_REGISTRATION = """
import os, signal, sys
import mlflow
from pipeline.tracking.registry import MlflowRegistry, intent_tags

uri, model, alias, promote, incumbent, step = sys.argv[1:]
registry = MlflowRegistry(uri, model)
intent = intent_tags(alias, promote == "true", incumbent)
tags = {"promoted": "false", "force_promote": "true", **intent}
version = registry.register("file:///nowhere/model", "", tags)
if step == "alias":  # the alias moved; killed before the tag, the history and the mark
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(model, alias, version)
print(version, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

# Real sqlite registries and a SIGKILLed process per test (seconds each).
pytestmark = pytest.mark.slow


@pytest.fixture
def uri(conf_dir: Path) -> str:
    return load_config(conf_dir).tracking_uri


@pytest.fixture
def registry(uri: str) -> MlflowRegistry:
    """v1 registered by a train that completed: champion, promoted, registration complete."""
    reg = MlflowRegistry(uri, MODEL)
    version = reg.register(
        "file:///nowhere/v1", "", {"promoted": "false", **intent_tags("champion", True, None)}
    )
    reg.set_alias("champion", version, record=True)
    return reg


def _killed(uri: str, alias: str, promote: bool, incumbent: str, step: str = "intent") -> str:
    """Run a registration that SIGKILLs itself after ``step``; return its version."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_REGISTRATION,
            uri,
            MODEL,
            alias,
            str(promote).lower(),
            incumbent,
            step,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    return done.stdout.strip()


def _tags(registry: MlflowRegistry, version: str) -> dict[str, str]:
    return registry.version_tags(version)


def test_a_completed_registration_is_marked_complete(registry: MlflowRegistry) -> None:
    tags = _tags(registry, "1")
    assert tags[REGISTRATION_TAG] == COMPLETE and tags["promoted"] == "true"
    assert registry.settle_pending() == []


def test_next_train_completes_a_promotion_killed_before_the_alias_moved(
    uri: str, registry: MlflowRegistry, conf_dir: Path
) -> None:
    version = _killed(uri, "champion", promote=True, incumbent="1")
    assert _tags(registry, version)[REGISTRATION_TAG] == PENDING
    assert registry.version_for_alias("champion") == "1"  # the kill of issue 21
    cfg = load_config(conf_dir)
    tracker = MlflowTracker(uri, cfg.tracking.experiment, conf_dir / "artifacts")
    tracker.check()  # what `train` runs before the gate reads the champion
    tags = _tags(registry, version)
    assert registry.version_for_alias("champion") == version
    assert tags["promoted"] == "true" and tags[REGISTRATION_TAG] == COMPLETE
    assert tags[SETTLED_TAG].startswith(f"completed: @champion -> v{version}")
    assert registry.alias_history("champion") == ["1", version]


def test_a_promotion_overtaken_by_a_newer_champion_is_abandoned(
    uri: str, registry: MlflowRegistry
) -> None:
    version = _killed(uri, "champion", promote=True, incumbent="1")
    newer = registry.register("file:///nowhere/v3", "", {"promoted": "false"})
    registry.set_alias("champion", newer, record=True)  # a later train promoted meanwhile
    assert registry.settle_pending() == [(version, ABANDONED)]
    tags = _tags(registry, version)
    assert registry.version_for_alias("champion") == newer
    assert tags["promoted"] == "false" and tags[REGISTRATION_TAG] == ABANDONED
    assert f"moved to v{newer} after the gate judged v1" in tags[SETTLED_TAG]
    assert registry.settle_pending() == []  # settled once


def test_models_list_finishes_a_promotion_killed_after_the_alias_moved(
    uri: str, registry: MlflowRegistry, conf_dir: Path
) -> None:
    version = _killed(uri, "champion", promote=True, incumbent="1", step="alias")
    assert _tags(registry, version)["promoted"] == "false"  # the alias leads the tag
    result = CliRunner().invoke(
        main, ["models", "list", "--config", str(conf_dir), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    listed = {v["version"]: v for v in json.loads(result.stdout)}
    assert listed[version]["aliases"] == ["champion"]
    assert listed[version]["tags"]["promoted"] == "true"
    assert listed[version]["tags"][REGISTRATION_TAG] == COMPLETE
    assert registry.alias_history("champion") == ["1", version]  # recorded once


def test_a_challenger_killed_before_its_alias_gets_it(uri: str, registry: MlflowRegistry) -> None:
    version = _killed(uri, "challenger", promote=False, incumbent="1")
    assert registry.settle_pending() == [(version, COMPLETE)]
    assert registry.version_for_alias("challenger") == version
    assert registry.version_for_alias("champion") == "1"
    assert _tags(registry, version)["promoted"] == "false"


def test_a_registration_in_progress_is_left_alone(registry: MlflowRegistry) -> None:
    # Pending and owned by this live process: it is being registered right now.
    tags = {"promoted": "false", **intent_tags("champion", True, "1")}
    version = registry.register("file:///nowhere/live", "", tags)
    assert registry.settle_pending() == []
    assert _tags(registry, version)[REGISTRATION_TAG] == PENDING
    assert registry.version_for_alias("champion") == "1"
