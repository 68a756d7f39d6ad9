"""The shipped config on data shaped like what users bring (tests/realdata.py), end to end.

One panel holds every trap at once: a business-day calendar whose holidays the benchmark (the
shipped SPY) skips, a ticker that lists mid-sample, one that delists, and a 25-day suspension
with volume 0. It must train with the shipped candidates (``--trials 2``), backtest and score;
no feature may be infinite, and no portfolio metric may depend on the tickers' names.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import polars as pl
import polars.selectors as cs
import pytest
from realdata import DELISTS, LAST, business_day_panel, with_stale_stretch
from support import invoke_ok, make_project

from pipeline.config import load_config
from pipeline.evaluation.portfolio import portfolio_report

pytestmark = pytest.mark.slow

TICKERS = ("ALPHA", "LATE", "GONE")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train with the shipped candidates, backtest and score, once for the module."""
    root = tmp_path_factory.mktemp("realdata")
    panel = with_stale_stretch(business_day_panel(TICKERS), "ALPHA", 900)
    path = root / "panel.csv"
    panel.write_csv(path)
    conf = make_project(root, candidates=None)
    args = ("--config", str(conf), "--data", str(path))
    summary = root / "summary.json"
    trained = invoke_ok("train", *args, "--trials", "2", "--quiet", "--summary", str(summary))
    backtest = invoke_ok("backtest", *args, "--output-dir", str(root / "backtest"))
    scored = invoke_ok("score", *args, "--output", str(root / "scores.parquet"))
    invoke_ok("features", *args, "--output", str(root / "features.parquet"))
    return {"root": root, "conf": conf, "summary": json.loads(summary.read_text())} | {
        "outputs": trained.output + backtest.output + scored.output
    }


def test_trains_on_every_ticker(project: dict[str, Any]) -> None:
    data = project["summary"]["data"]
    assert set(data["tickers"]) == set(TICKERS) and not data["skipped_tickers"]
    assert project["summary"]["champion"]["version"] is not None


def test_no_feature_is_infinite_or_nan(project: dict[str, Any]) -> None:
    frame = pl.read_parquet(project["root"] / "features.parquet")
    floats = frame.select(cs.float())
    assert floats.width > 30
    bad = {
        c: n
        for c, n in floats.select(~cs.all().is_finite() & cs.all().is_not_null())
        .sum()
        .row(0, named=True)
        .items()
        if n
    }
    assert bad == {}
    # The market features are defined on the benchmark's holidays too (its last close).
    market = [c for c in frame.columns if c.startswith(("beta_", "corr_"))]
    assert market
    for c in market:
        nulls = frame.get_column(c).null_count()
        assert nulls <= len(TICKERS) * 60, c  # the window's own warm-up only


def test_backtest_metrics_do_not_depend_on_ticker_names(project: dict[str, Any]) -> None:
    root = project["root"]
    metrics = json.loads((root / "backtest" / "metrics.json").read_text())
    block = metrics["portfolio"]
    assert block is not None and block["n_tickers"] == len(TICKERS)
    oos = pl.read_parquet(root / "backtest" / "predictions.parquet")
    cfg = load_config(project["conf"]).training.portfolio
    cols = [oos.get_column(c).to_numpy() for c in ("date", "ticker", "prediction", "realised")]
    same = portfolio_report(*cols, cfg, 1, 252.0)
    renamed = np.array([f"Z{9 - TICKERS.index(t)}" for t in cols[1]])
    other = portfolio_report(cols[0], renamed, cols[2], cols[3], cfg, 1, 252.0)
    constant = portfolio_report(cols[0], cols[1], np.zeros(len(cols[2])), cols[3], cfg, 1, 252.0)
    assert same is not None and other is not None and constant is not None
    for key in ("sharpe", "annual_return", "max_drawdown", "turnover", "rank_ic"):
        assert same.model_dump()[key] == block[key]
        assert other.model_dump()[key] == pytest.approx(block[key], rel=1e-12, nan_ok=True)
    # A constant model ties everywhere: it holds nothing, whatever the names.
    assert constant.tied_rebalances == constant.rebalances and constant.turnover == 0.0


def test_score_predicts_the_listed_tickers_as_of_the_last_date(project: dict[str, Any]) -> None:
    scores = pl.read_parquet(project["root"] / "scores.parquet")
    live = scores.filter(pl.col("ticker") != "GONE")
    assert sorted(live.get_column("ticker").unique()) == ["ALPHA", "LATE"]
    assert set(live.get_column("as_of_date")) == {LAST}
    assert np.isfinite(scores.get_column("prediction").to_numpy()).all()
    gone = scores.filter(pl.col("ticker") == "GONE")
    assert gone.height == 0 or set(gone.get_column("as_of_date")) == {DELISTS}
