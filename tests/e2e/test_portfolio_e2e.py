"""The cross-sectional portfolio end to end: `stockpipe train` then `backtest` on a panel.

Eight synthetic tickers on the SPY sample's calendar, each with a planted short-term reversal
(tomorrow's log return is -0.3 x today's plus noise): one global model learns it, and the
portfolio block, its MLflow metrics and its two plots appear in both the train run and the
backtest files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner, Result
from support import make_project, sample_prices, sqlite_uri, write_yaml

from pipeline.cli import main

pytestmark = pytest.mark.slow

N_TICKERS, N_DAYS, REVERSAL = 8, 900, 0.3
PLOTS = ("portfolio_returns.png", "portfolio_quantiles.png")


def _invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _panel(path: Path) -> Path:
    """OHLCV of N_TICKERS reversal series on the last N_DAYS dates of the SPY sample."""
    rng = np.random.default_rng(2026)
    days = sample_prices("SPY")["date"].tail(N_DAYS)
    frames = []
    for i in range(N_TICKERS):
        eps = rng.normal(0.0, 0.015, N_DAYS)
        r = np.empty(N_DAYS)
        r[0] = eps[0]
        for t in range(1, N_DAYS):
            r[t] = -REVERSAL * r[t - 1] + eps[t]
        close = 50.0 * np.exp(np.cumsum(r))
        open_ = close * np.exp(rng.normal(0.0, 0.002, N_DAYS))
        frames.append(
            pl.DataFrame(
                {
                    "ticker": f"S{i}",
                    "date": days,
                    "open": open_,
                    "high": np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, N_DAYS)),
                    "low": np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, N_DAYS)),
                    "close": close,
                    "volume": rng.integers(1_000_000, 5_000_000, N_DAYS).astype(float),
                }
            )
        )
    pl.concat(frames).write_parquet(path)
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("portfolio")
    data = _panel(root / "panel.parquet")
    training = {
        "folds": {"n_folds": 2, "test_size": 120, "min_train_size": 300},
        "portfolio": {"top_k": 2, "bottom_k": 2, "cost_bps": 5},
    }
    ridge = {"name": "ridge", "estimator": "ridge", "params": {"alpha": 1.0}}
    conf = make_project(
        root, data={"path": None}, training=training, candidates={"candidates": [ridge]}
    )
    write_yaml(conf / "local" / "model.yaml", {"selection": {"k": 10}})
    args = ["--config", str(conf), "--data", str(data)]
    summary, out = root / "summary.json", root / "report"
    _invoke("train", *args, "--trials", "1", "--quiet", "--summary", str(summary))
    _invoke("backtest", *args, "--output-dir", str(out))
    uri = sqlite_uri(root)
    return {
        "summary": json.loads(summary.read_text()),
        "metrics": json.loads((out / "metrics.json").read_text()),
        "out": out,
        "client": mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri),
    }


def test_backtest_writes_the_portfolio_block_and_plots(project: dict[str, Any]) -> None:
    block = project["metrics"]["portfolio"]
    assert (block["top_k"], block["bottom_k"], block["n_tickers"]) == (2, 2, N_TICKERS)
    assert block["periods"] == 2 * 120 and block["clamped_rebalances"] == 0
    assert len(block["quantile_returns"]) == 5
    for name in PLOTS:
        assert (project["out"] / name).read_bytes()[:4] == b"\x89PNG"


def test_the_planted_reversal_shows_in_the_portfolio(project: dict[str, Any]) -> None:
    block = project["metrics"]["portfolio"]
    assert block["rank_ic"] > 0.05 and block["rank_ic_tstat"] > 2
    assert block["long_short_spread"] > 0
    q = block["quantile_returns"]
    assert q[-1] > q[0]


def test_train_reports_the_same_block_for_the_champion(project: dict[str, Any]) -> None:
    train_block = project["summary"]["backtest"]["portfolio"]
    # backtest refits the same pipeline on the same folds: the same predictions
    backtest_block = project["metrics"]["portfolio"]
    assert train_block.keys() == backtest_block.keys()
    for key, value in train_block.items():
        if isinstance(value, float | list):
            assert value == pytest.approx(backtest_block[key], rel=1e-9), key
        else:
            assert value == backtest_block[key], key
    client = project["client"]
    experiment = client.get_experiment_by_name("stockpipe")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`mlflow.runName` = 'train'")
    (train_run,) = runs
    assert train_run.data.metrics["oos_portfolio_sharpe"] == pytest.approx(train_block["sharpe"])
    assert "oos_portfolio_q5_return" in train_run.data.metrics
    logged = {a.path for a in client.list_artifacts(train_run.info.run_id, "backtest")}
    assert {f"backtest/{name}" for name in PLOTS} <= logged
