"""`stockpipe serve` without the `serve` extra: exit 2 and one line saying what to install.

Each case runs the real CLI in a subprocess where one of the extra's modules cannot be
imported (``sys.modules[name] = None`` makes ``import name`` raise ModuleNotFoundError, as on
an install without it); nothing of stockpipe's is replaced.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUN_WITHOUT = """
import sys
sys.modules[sys.argv[1]] = None  # as if not installed
from pipeline.cli import main
sys.argv = ["stockpipe", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize("module", ["prometheus_client", "fastapi"])  # uvicorn: the same path
def test_serve_without_the_extra_exits_2_naming_the_module(conf_dir: Path, module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT, module, "serve", "--config", str(conf_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: `stockpipe serve` needs the serving extra (no module named '{module}'): "
        'pip install -e ".[serve]"'
    ]
    assert "Traceback" not in done.stderr + done.stdout
