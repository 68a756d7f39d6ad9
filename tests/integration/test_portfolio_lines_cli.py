"""Issue 22: `train` and `backtest` print the panel's portfolio block; its quantile plot is
honest about a 3-ticker panel (terciles, not quintiles with two empty).

The oracle for the printed numbers is metrics.json / the train summary as written to disk,
read back with plain ``json`` and formatted here, not the CLI's formatter.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import polars as pl
import pytest
from realdata import DELISTS, business_day_panel
from support import invoke_ok, make_project

pytestmark = pytest.mark.slow  # trains a ridge (--trials 1) on three tickers

RIDGE = {"name": "ridge", "estimator": "ridge", "params": {"alpha": 1.0}}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("lines")
    # Up to GONE's last bar, so that all three tickers are in the test windows.
    panel = business_day_panel().filter(pl.col("date").is_between(dt.date(2017, 1, 1), DELISTS))
    panel.write_csv(data := root / "panel.csv")
    training = {
        "folds": {"n_folds": 2, "test_size": 100, "min_train_size": 300},
        "portfolio": {"top_k": 1, "bottom_k": 1, "cost_bps": 5},
    }
    conf = make_project(root, training=training, candidates={"candidates": [RIDGE]})
    args = ["--config", str(conf), "--data", str(data)]
    summary, out = root / "summary.json", root / "report"
    trained = invoke_ok("train", *args, "--trials", "1", "--quiet", "--summary", str(summary))
    tested = invoke_ok("backtest", *args, "--output-dir", str(out))
    return {
        "train": trained.output,
        "backtest": tested.output,
        "summary": json.loads(summary.read_text())["backtest"]["portfolio"],
        "metrics": json.loads((out / "metrics.json").read_text())["portfolio"],
        "out": out,
    }


def _expected(block: dict[str, Any]) -> list[str]:
    return [
        f"long/short sharpe {block['sharpe']:.2f}",
        f"max drawdown {block['max_drawdown']:.3f}",
        f"turnover {block['turnover']:.2f}",
        f"rank ic {block['rank_ic']:.3f} (t {block['rank_ic_tstat']:.2f})",
        f"of {block['rebalances']} rebalances {block['tied_rebalances']} tied, "
        f"{block['clamped_rebalances']} clamped",
    ]


@pytest.mark.parametrize(("command", "source"), [("train", "summary"), ("backtest", "metrics")])
def test_the_command_prints_the_portfolio_block(
    project: dict[str, Any], command: str, source: str
) -> None:
    output = project[command]
    assert "portfolio (top 1 / bottom 1 of 3 tickers, after 5 bps)" in output, output
    for piece in _expected(project[source]):
        assert piece in output, (piece, output)


def test_three_tickers_give_three_buckets(project: dict[str, Any]) -> None:
    block = project["metrics"]
    assert block["n_quantiles"] == 3 and len(block["quantile_returns"]) == 3
    assert all(q is not None for q in block["quantile_returns"])
    assert (project["out"] / "portfolio_quantiles.png").read_bytes()[:4] == b"\x89PNG"
