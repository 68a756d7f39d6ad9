"""`stockpipe --log-json train`: every log record on stderr is a JSON object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_stockpipe


@pytest.mark.slow
def test_log_json_emits_json_lines(conf_dir: Path, tmp_path: Path) -> None:
    """The one logging setup: --log-json turns every log record on stderr into a JSON object."""
    args = ("--log-json", "train", "--config", str(conf_dir), "--trials", "1", "--quiet")
    proc = run_stockpipe(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert records and all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["message"].startswith("training set:") for r in records)
    plain = [ln for ln in proc.stderr.splitlines() if " INFO " in ln and not ln.startswith("{")]
    assert plain == []  # no record escaped the JSON formatter
