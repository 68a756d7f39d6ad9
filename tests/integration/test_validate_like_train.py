"""`validate` refuses what `train` refuses, with the same message and exit code (issue 21, 10b-c),
and output flags refuse a suffix their writer does not write (11a)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from damage import real_warehouse
from support import overlay
from tracking_server import free_port

from pipeline.cli import main
from pipeline.errors import EXIT_INPUT, EXIT_TRACKING

WAREHOUSE_DAMAGE = {
    "truncated": lambda good: good[: len(good) // 2],
    # Headers intact, every data block overwritten: only reading the rows finds it.
    "overwritten": lambda good: good[:12288] + b"\xab" * (len(good) - 12288),
}


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _error_line(result: Result, marker: str) -> str:
    return next(line for line in result.output.splitlines() if marker in line)


@pytest.mark.slow  # runs validate and train on each damaged warehouse (seconds each)
@pytest.mark.parametrize("damage", sorted(WAREHOUSE_DAMAGE))
def test_validate_refuses_a_corrupt_warehouse_as_train_does(
    conf_dir: Path, tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "warehouse.duckdb"  # the warehouse conf_dir points at
    path.write_bytes(WAREHOUSE_DAMAGE[damage](real_warehouse(path)))
    before = path.read_bytes()
    checked = _invoke("validate", "--config", str(conf_dir))
    assert checked.exit_code == EXIT_INPUT, checked.output
    said = _error_line(checked, f"warehouse {path} is corrupt")
    assert "stockpipe data rebuild" in said and "Traceback" not in checked.output
    assert path.read_bytes() == before  # validate writes nothing
    trained = _invoke("train", "--config", str(conf_dir), "--trials", "1", "--quiet")
    assert trained.exit_code == EXIT_INPUT, trained.output
    assert _error_line(trained, f"warehouse {path} is corrupt") == f"error: {said}"


def test_validate_reads_a_healthy_warehouse_back(conf_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    result = _invoke("validate", "--config", str(conf_dir))
    assert result.exit_code == 0, result.output
    assert f"warehouse: {path} (created on first use)" in result.output
    real_warehouse(path)
    result = _invoke("validate", "--config", str(conf_dir))
    assert result.exit_code == 0, result.output
    assert f"warehouse: {path} (" in result.output and "rows, readable)" in result.output


@pytest.mark.parametrize("command", ["validate", "train"])
def test_unreachable_tracking_server_exits_4_from_validate_and_train(
    conf_dir: Path, command: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    overlay(conf_dir, "tracking", uri=dead)  # validate takes no --tracking-uri
    args = [command, "--config", str(conf_dir)]
    result = _invoke(*args, *(["--trials", "1", "--quiet"] if command == "train" else []))
    assert result.exit_code == EXIT_TRACKING, result.output
    assert f"tracking server {dead} is unreachable" in result.output


def test_validate_exits_4_when_the_sqlite_store_cannot_be_created(
    conf_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    overlay(conf_dir, "tracking", uri=f"sqlite:///{blocker / 'mlflow.db'}")
    result = _invoke("validate", "--config", str(conf_dir))
    assert result.exit_code == EXIT_TRACKING, result.output
    assert "tracking store" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("score", "--output"),
        ("features", "--output"),
    ],
)
@pytest.mark.parametrize("name", ["predictions.csv", "predictions.PARQUET.txt", "predictions"])
def test_parquet_outputs_refuse_other_suffixes(
    conf_dir: Path, tmp_path: Path, args: tuple[str, str], name: str
) -> None:
    out = tmp_path / name
    result = _invoke(*args, str(out), "--config", str(conf_dir))
    assert result.exit_code == EXIT_INPUT, result.output
    assert "Invalid value for '--output'" in result.output
    assert "does not end in .parquet" in result.output
    assert not out.exists()
