"""Every README task has a make target, and targets use ./.venv/bin without activation."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support import REPO

TARGETS = {
    "train": "stockpipe train --config conf/",
    "tune": "stockpipe tune --config conf/",
    "score": "stockpipe score --config conf/",
    "backtest": "stockpipe backtest --config conf/ --output-dir outputs/backtest",
    "serve": "stockpipe serve --config conf/ --host 127.0.0.1 --port 8000",
    "monitor": "stockpipe monitor --config conf/ --output-dir outputs/monitor",
    "fetch": "stockpipe fetch --config conf/ --tickers NVDA,SPY",
    "validate": "stockpipe validate --config conf/",
}

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _dry_run(folder: Path, *args: str) -> str:
    out = subprocess.run(
        ["make", "-n", *args], cwd=folder, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_targets_use_the_venv_when_it_exists(tmp_path: Path, target: str) -> None:
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    assert _dry_run(tmp_path, target) == TARGETS[target]  # no venv: whatever is on PATH
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    assert _dry_run(tmp_path, target) == ".venv/bin/" + TARGETS[target]


def test_compose_targets(tmp_path: Path) -> None:
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    assert _dry_run(tmp_path, "compose-up") == "docker compose  up -d --build"
    assert _dry_run(tmp_path, "compose-up", "PROFILE=minio") == (
        "docker compose --profile minio up -d --build"
    )
    assert _dry_run(tmp_path, "compose-down") == "docker compose  down"
