"""Issue 10 end to end: a 3-ticker, 1,500-day panel trains on fitted folds, and `score`
refuses (or skips) short tickers, through the CLI on a real MLflow sqlite store."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner, Result
from support import SAMPLE, make_project, overlay

from pipeline.cli import main

pytestmark = pytest.mark.slow


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def panel(days: int, short: dict[str, int] | None = None) -> pl.DataFrame:
    frames = []
    for name in ("NVDA", "SPY", "QQQ"):
        frame = pl.read_csv(SAMPLE / f"{name}.csv").tail(days)
        frames.append(frame.with_columns(pl.lit(name).alias("ticker")))
    for name, rows in (short or {}).items():
        frame = pl.read_csv(SAMPLE / "NVDA.csv").tail(rows)
        frames.append(frame.with_columns(pl.lit(name).alias("ticker")))
    return pl.concat(frames)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("panel")
    conf = make_project(root, data={"path": None})  # the panel comes with --data
    data = root / "panel.csv"
    panel(1500).write_csv(data)
    summary = root / "summary.json"
    result = invoke(
        "train",
        "--config",
        str(conf),
        "--data",
        str(data),
        "--summary",
        str(summary),
        "--trials",
        "1",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    return {"root": root, "conf": conf, "summary": summary, "output": result.output}


def test_default_folds_are_fitted_and_reported(trained: dict[str, Path]) -> None:
    doc = json.loads(trained["summary"].read_text())
    layout = doc["folds_layout"]
    assert layout["n_folds"] == 5 and layout["test_size"] < 250
    assert "does not fit" in layout["adapted"] and "note: the default fold layout" in str(
        trained["output"]
    )
    assert doc["data"]["tickers"] == ["NVDA", "QQQ", "SPY"]


def test_score_refuses_short_tickers_by_default(trained: dict[str, Path]) -> None:
    root, conf = trained["root"], trained["conf"]
    data = root / "score.csv"
    panel(400, {"TINY": 30}).write_csv(data)
    out = root / "pred.parquet"
    refused = invoke("score", "--config", str(conf), "--data", str(data), "--output", str(out))
    assert refused.exit_code == 2 and "TINY has 30 row(s)" in refused.output
    assert not out.exists()
    overlay(conf, "data", short_history="skip")
    done = invoke("score", "--config", str(conf), "--data", str(data), "--output", str(out))
    assert done.exit_code == 0, done.output
    assert "skipped: TINY (30 rows, needs" in done.output
    assert sorted(pl.read_parquet(out)["ticker"].to_list()) == ["NVDA", "QQQ", "SPY"]


def test_score_refuses_an_unwritable_output_before_work(trained: dict[str, Path]) -> None:
    result = invoke("score", "--config", str(trained["conf"]), "--output", "/sys/nope/p.parquet")
    assert result.exit_code == 2 and "not writable" in result.output
