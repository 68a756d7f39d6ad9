"""An unreachable --tracking-uri fails every command fast, with one clear line.

The URI points at a local port nothing listens on. Before the fix, `models`, `score` and
`backtest` went straight to MLflow, which retried with backoff (~17 s) and then printed raw
urllib text ("Max retries exceeded"); now one /health probe answers first, for every adapter.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tracking_server import free_port

from pipeline.cli import main
from pipeline.errors import TrackingError, TrackingUnavailableError
from pipeline.tracking.mlflow_adapter import MlflowModelLoader, MlflowRegistry, MlflowTracker


@pytest.fixture
def dead_uri() -> str:
    return f"http://127.0.0.1:{free_port()}"


COMMANDS = [
    ("models", "list"),
    ("models", "list", "--format", "json"),
    ("models", "promote", "1"),
    ("models", "rollback"),
    ("score",),
    ("backtest",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_command_fails_fast_with_one_line(
    command: tuple[str, ...], dead_uri: str, conf_dir: Path, tmp_path: Path
) -> None:
    args = [*command, "--config", str(conf_dir), "--tracking-uri", dead_uri]
    if command[0] == "score":
        args += ["--output", str(tmp_path / "out" / "predictions.parquet")]
    if command[0] == "backtest":
        args += ["--output-dir", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == TrackingUnavailableError.exit_code == 4, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: tracking server {dead_uri} is unreachable")
    assert "--tracking-uri sqlite:///" in lines[-1]
    # MLflow was never called: no retry loop, no raw urllib text, no traceback.
    assert "Max retries" not in result.output and "API request" not in result.output
    assert "Traceback" not in result.output


def test_every_adapter_probes_before_its_first_call(dead_uri: str, tmp_path: Path) -> None:
    calls = [
        lambda: MlflowTracker(dead_uri, "e", tmp_path).check(),
        lambda: MlflowRegistry(dead_uri, "M").versions(),
        lambda: MlflowRegistry(dead_uri, "M").version_for_alias("champion"),
        lambda: MlflowModelLoader(dead_uri).load("models:/M@champion"),
    ]
    for call in calls:
        with pytest.raises(TrackingError, match="is unreachable"):
            call()
