"""Issue 22: quantile buckets of small panels, and the portfolio lines train/backtest print.

Oracle for the buckets: a plain per-date Python loop over the names sorted by prediction (the
mid-rank rule written out by hand), not the vectorised code under test. The printed lines are
checked against tie and clamp counts worked out by hand on a 3-ticker panel.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli.run import portfolio_lines
from pipeline.evaluation.portfolio import portfolio_report
from pipeline.evaluation.report_files import _quantile_plot, quantile_caption
from pipeline.evaluation.results import PortfolioReport
from pipeline.settings import PortfolioConfig

ONE_ONE = PortfolioConfig(top_k=1, bottom_k=1, cost_bps=0)


def _rows(
    pred: np.ndarray, simple: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Long rows of date x ticker matrices; a nan prediction means no row that date."""
    n_dates, n_tickers = pred.shape
    dates = np.repeat(np.arange(n_dates), n_tickers)
    tickers = np.tile([f"T{i}" for i in range(n_tickers)], n_dates)
    keep = np.isfinite(pred.ravel())
    return dates[keep], tickers[keep], pred.ravel()[keep], np.log1p(simple.ravel())[keep]


def _report(pred: np.ndarray, simple: np.ndarray, cfg: PortfolioConfig) -> PortfolioReport:
    report = portfolio_report(*_rows(pred, simple), cfg, 1, 252)
    assert report is not None
    return report


def _by_hand(pred: np.ndarray, simple: np.ndarray, buckets: int) -> list[float]:
    """Per date: names sorted by prediction, the i-th (from 0) of n into bucket
    floor((i + 0.5) * buckets / n); bucket means per date, then averaged over dates."""
    per_bucket: list[list[float]] = [[] for _ in range(buckets)]
    for p_row, r_row in zip(pred, simple, strict=True):
        names = sorted((p, r) for p, r in zip(p_row, r_row, strict=True) if math.isfinite(p))
        if len(names) < 2:
            continue
        members: list[list[float]] = [[] for _ in range(buckets)]
        for i, (_, r) in enumerate(names):
            members[math.floor((i + 0.5) * buckets / len(names))].append(r)
        for b, rs in enumerate(members):
            if rs:
                per_bucket[b].append(sum(rs) / len(rs))
    return [sum(v) / len(v) for v in per_bucket]


def test_three_tickers_get_terciles_with_none_empty() -> None:
    rng = np.random.default_rng(22)
    pred, simple = rng.normal(size=(30, 3)), rng.normal(0, 0.02, (30, 3))
    report = _report(pred, simple, ONE_ONE)
    assert report.n_quantiles == 3 and len(report.quantile_returns) == 3
    assert report.quantile_returns == pytest.approx(_by_hand(pred, simple, 3))


def test_a_ticker_listing_late_leaves_the_middle_tercile_to_full_dates() -> None:
    rng = np.random.default_rng(23)
    pred, simple = rng.normal(size=(20, 3)), rng.normal(0, 0.02, (20, 3))
    pred[:8, 2] = np.nan  # T2 lists on date 8: two names before, bottom and top only
    report = _report(pred, simple, ONE_ONE)
    assert report.n_quantiles == 3
    assert report.quantile_returns == pytest.approx(_by_hand(pred, simple, 3))


def test_a_wide_panel_keeps_quintiles() -> None:
    rng = np.random.default_rng(24)
    pred, simple = rng.normal(size=(12, 7)), rng.normal(0, 0.02, (12, 7))
    report = _report(pred, simple, ONE_ONE)
    assert report.n_quantiles == 5
    assert report.quantile_returns == pytest.approx(_by_hand(pred, simple, 5))


def test_the_plot_says_it_holds_terciles(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(25)
    small = _report(rng.normal(size=(10, 3)), rng.normal(0, 0.02, (10, 3)), ONE_ONE)
    name, note = quantile_caption(small)
    assert name == "tercile" and note is not None
    assert "only 3 tickers" in note and "not 5 quintiles" in note
    with caplog.at_level(logging.WARNING):
        _quantile_plot(tmp_path / "q.png", small)
    assert (tmp_path / "q.png").read_bytes()[:4] == b"\x89PNG"
    assert any("only 3 tickers" in r.getMessage() for r in caplog.records)
    wide = _report(rng.normal(size=(10, 6)), rng.normal(0, 0.02, (10, 6)), ONE_ONE)
    assert quantile_caption(wide) == ("quintile", None)


def test_printed_lines_show_sharpe_ic_ties_and_clamps() -> None:
    pred = np.array([[0.1, 0.1, 0.1], [0.3, 0.2, 0.1], [0.0, 0.5, 0.5], [0.1, 0.2, 0.3]])
    simple = np.array([[0.01, -0.01, 0.0], [0.02, 0.0, -0.01], [0.0, 0.01, 0.02], [0.0, 0.0, 0.01]])
    # Dates 0 (all tied) and 2 (two tied for the top place) straddle a boundary: 2 of 4.
    tied = _report(pred, simple, ONE_ONE)
    lines = portfolio_lines(tied)
    assert len(lines) == 2
    assert lines[0].startswith("portfolio (top 1 / bottom 1 of 3 tickers, after 0 bps)")
    assert f"long/short sharpe {tied.sharpe:.2f}" in lines[0]
    assert f"max drawdown {tied.max_drawdown:.3f}" in lines[0]
    assert "of 4 rebalances 2 tied, 0 clamped" in lines[1]
    assert f"rank ic {tied.rank_ic:.3f} (t {tied.rank_ic_tstat:.2f})" in lines[1]
    # 2 + 2 wanted of 3 names: every rebalance clamped to 1 + 1.
    clamped = _report(pred, simple, PortfolioConfig(top_k=2, bottom_k=2))
    assert "of 4 rebalances 2 tied, 4 clamped" in portfolio_lines(clamped)[1]
    long_only = _report(pred, simple, PortfolioConfig(top_k=1, bottom_k=0))
    assert "(top 1 of 3 tickers" in portfolio_lines(long_only)[0]
    assert "long-only sharpe" in portfolio_lines(long_only)[0]
    assert portfolio_lines(None) == []
