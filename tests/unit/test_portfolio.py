"""The cross-sectional portfolio backtest (pipeline.evaluation.portfolio).

Oracles: numbers worked out by hand on a 4-ticker x 5-date panel, a plain per-date Python loop
for weights, turnover and returns, and ``scipy.stats.spearmanr`` for the rank IC. Then a
synthetic 60-ticker panel with a planted cross-sectional reversal, and the same panel without it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr

from pipeline.domain import Fold
from pipeline.evaluation.honesty import TrialSet
from pipeline.evaluation.portfolio import grid, portfolio_report, portfolio_series
from pipeline.evaluation.report import OutOfSample, flat_metrics, walk_forward_report
from pipeline.evaluation.report_files import write_report_files
from pipeline.evaluation.results import PortfolioReport
from pipeline.settings import PortfolioConfig, StrategyConfig

TICKERS = ["A", "B", "C", "D"]
# Rows are dates d0..d4, columns tickers A..D.
PRED = np.array(
    [
        [0.3, 0.1, -0.2, 0.0],  # long A, short C
        [0.1, 0.4, 0.0, -0.1],  # long B, short D
        [0.1, 0.4, 0.0, -0.1],  # unchanged
        [0.5, 0.2, 0.1, -0.3],  # long A, short D
        [0.0, 0.1, -0.5, 0.5],  # long D, short C
    ]
)
SIMPLE = np.array(
    [
        [0.01, 0.02, -0.01, 0.00],
        [0.00, 0.03, 0.01, -0.02],
        [0.01, -0.01, 0.00, 0.01],
        [0.02, 0.00, 0.00, -0.01],
        [0.00, 0.00, 0.01, 0.00],
    ]
)


def _rows(pred: np.ndarray, simple: np.ndarray, tickers: list[str] | None = None) -> tuple:
    """Long-format (dates, tickers, pred, log return) rows of date x ticker matrices."""
    n_dates, n_tickers = pred.shape
    names = tickers or [f"T{i:03d}" for i in range(n_tickers)]
    dates = np.repeat(np.arange(n_dates), n_tickers)
    return dates, np.tile(names, n_dates), pred.ravel(), np.log1p(simple.ravel())


def _report(cfg: PortfolioConfig, horizon: int = 1, ppy: float = 252.0) -> PortfolioReport:
    report = portfolio_report(*_rows(PRED, SIMPLE, TICKERS), cfg, horizon, ppy)
    assert report is not None
    return report


def _series(cfg: PortfolioConfig, horizon: int = 1) -> Any:
    return portfolio_series(grid(*_rows(PRED, SIMPLE, TICKERS), horizon), cfg, horizon)


ONE_ONE = PortfolioConfig(top_k=1, bottom_k=1, cost_bps=10)


def test_weights_turnover_costs_and_returns_by_hand() -> None:
    s = _series(ONE_ONE)
    np.testing.assert_array_equal(
        s.weights,
        [[1, 0, -1, 0], [0, 1, 0, -1], [0, 1, 0, -1], [1, 0, 0, -1], [0, 0, -1, 1]],
    )
    # turnover 2, 4, 0, 2, 4 at 10 bps; long book + short book - costs
    np.testing.assert_allclose(s.net, [0.018, 0.046, -0.02, 0.028, -0.014], atol=1e-15)
    np.testing.assert_allclose(s.long, [0.01, 0.03, -0.01, 0.02, 0.0], atol=1e-15)
    np.testing.assert_allclose(s.short, [0.01, 0.02, -0.01, 0.01, -0.01], atol=1e-15)
    r = _report(ONE_ONE)
    assert r.turnover == pytest.approx(2.4)
    assert r.hit_rate == pytest.approx(3 / 5)
    # equal weights: top-minus-bottom is the gross return of the dollar-neutral book
    assert r.long_short_spread == pytest.approx(np.mean([0.02, 0.05, -0.02, 0.03, -0.01]))
    net = np.array([0.018, 0.046, -0.02, 0.028, -0.014])
    assert r.sharpe == pytest.approx(net.mean() / net.std(ddof=1) * math.sqrt(252))
    assert r.annual_volatility == pytest.approx(net.std(ddof=1) * math.sqrt(252))
    assert r.max_drawdown == pytest.approx(0.02)  # only d2 falls below a previous peak
    assert (r.periods, r.rebalances, r.clamped_rebalances, r.n_tickers) == (5, 5, 0, 4)


def _loop_oracle(
    pred: np.ndarray, simple: np.ndarray, top_k: int, bottom_k: int, cost_bps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per date: sort, long the top k and short the bottom k with equal weights, pay turnover."""
    prev = [0.0] * pred.shape[1]
    weights, rets = [], []
    for p, r in zip(pred, simple, strict=True):
        order = sorted(range(len(p)), key=lambda i: (p[i], i))
        w = [0.0] * len(p)
        for i in order[len(p) - top_k :]:
            w[i] = 1.0 / top_k
        for i in order[:bottom_k]:
            w[i] = -1.0 / bottom_k
        turnover = sum(abs(a - b) for a, b in zip(w, prev, strict=True))
        rets.append(sum(wi * ri for wi, ri in zip(w, r, strict=True)) - cost_bps / 1e4 * turnover)
        weights.append(w)
        prev = w
    return np.array(weights), np.array(rets)


@pytest.mark.parametrize(("top_k", "bottom_k"), [(3, 3), (2, 4), (5, 0)])
def test_equal_weights_match_a_plain_loop_on_a_random_panel(top_k: int, bottom_k: int) -> None:
    rng = np.random.default_rng(7)
    pred, simple = rng.normal(size=(40, 12)), rng.normal(0, 0.02, (40, 12))
    cfg = PortfolioConfig(top_k=top_k, bottom_k=bottom_k, cost_bps=7)
    s = portfolio_series(grid(*_rows(pred, simple), 1), cfg, 1)
    weights, rets = _loop_oracle(pred, simple, top_k, bottom_k, 7)
    np.testing.assert_allclose(s.weights, weights, atol=1e-15)
    np.testing.assert_allclose(s.net, rets, atol=1e-15)
    assert s.weights[:, :].clip(0).sum(axis=1) == pytest.approx(np.ones(40))
    assert -s.weights.clip(max=0).sum(axis=1) == pytest.approx(np.full(40, float(bottom_k > 0)))


def test_long_only_when_bottom_k_is_zero() -> None:
    s = _series(PortfolioConfig(top_k=2, bottom_k=0, cost_bps=0))
    np.testing.assert_allclose(s.weights[0], [0.5, 0.5, 0, 0])  # A and B are the top two
    assert (s.weights >= 0).all() and (s.short == 0).all()
    np.testing.assert_allclose(s.net[0], 0.5 * 0.01 + 0.5 * 0.02)
    r = _report(PortfolioConfig(top_k=2, bottom_k=0, cost_bps=0))
    assert r.long_short_spread is None  # no short book


def test_score_weighting_by_distance_from_the_dates_mean() -> None:
    s = _series(PortfolioConfig(top_k=2, bottom_k=2, weighting="score", cost_bps=0))
    # d0: mean 0.05, scores A .25, B .05, C -.25, D -.05
    np.testing.assert_allclose(s.weights[0], [0.25 / 0.3, 0.05 / 0.3, -0.25 / 0.3, -0.05 / 0.3])
    assert s.weights.clip(0).sum(axis=1) == pytest.approx(np.ones(5))
    assert s.weights.clip(max=0).sum(axis=1) == pytest.approx(-np.ones(5))


def test_a_constant_model_holds_nothing_and_counts_its_ties() -> None:
    # Every ticker is tied in both books: each is half a long and half a short member.
    pred = np.zeros((3, 4))
    for weighting in ("score", "equal"):
        cfg = PortfolioConfig(top_k=2, bottom_k=2, weighting=weighting)
        s = portfolio_series(grid(*_rows(pred, SIMPLE[:3]), 1), cfg, 1)
        np.testing.assert_allclose(s.weights, 0.0, atol=1e-15)
        assert (s.rebalances, s.tied) == (3, 3)


def test_tied_names_share_the_boundary_places() -> None:
    # Worked by hand: B and C tie for the long book's second place; D is the short book.
    pred = np.array([[3.0, 2.0, 2.0, 1.0]])
    cfg = PortfolioConfig(top_k=2, bottom_k=1, weighting="equal")
    s = portfolio_series(grid(*_rows(pred, SIMPLE[:1], TICKERS), 1), cfg, 1)
    np.testing.assert_allclose(s.weights[0], [0.5, 0.25, 0.25, -1.0])
    assert s.tied == 1
    untied = portfolio_series(grid(*_rows(PRED, SIMPLE, TICKERS), 1), cfg, 1)
    assert untied.tied == 0


@pytest.mark.parametrize("weighting", ["equal", "score"])
def test_renaming_tickers_changes_no_metric(weighting: str) -> None:
    # A tree model's predictions: few distinct values, many ties at the book boundaries.
    rng = np.random.default_rng(7)
    pred = np.round(rng.normal(size=(120, 9)), 0) / 10
    simple = rng.normal(0, 0.02, size=(120, 9))
    cfg = PortfolioConfig(top_k=3, bottom_k=3, weighting=weighting, cost_bps=5)
    names = [f"T{i}" for i in range(9)]
    base = portfolio_report(*_rows(pred, simple, names), cfg, 1, 252.0)
    assert base is not None and base.tied_rebalances > 60
    for perm in (names[::-1], [names[i] for i in rng.permutation(9)]):
        renamed = portfolio_report(*_rows(pred, simple, [f"Z{n}" for n in perm]), cfg, 1, 252.0)
        # The same columns under other names, in another order: every number must hold.
        order = np.argsort(perm)
        shuffled = portfolio_report(
            *_rows(pred[:, order], simple[:, order], sorted(perm)), cfg, 1, 252.0
        )
        assert renamed is not None and shuffled is not None
        for other in (renamed, shuffled):
            a, b = base.model_dump(), other.model_dump()
            for key, value in a.items():
                expected = (
                    value
                    if isinstance(value, str)
                    else pytest.approx(value, rel=1e-12, abs=1e-15, nan_ok=True)
                )
                assert b[key] == expected, key


def test_rebalance_days_hold_positions_in_between() -> None:
    cfg = PortfolioConfig(top_k=1, bottom_k=1, rebalance_days=2, cost_bps=10)
    s = _series(cfg)
    daily = _series(ONE_ONE).weights
    np.testing.assert_array_equal(s.weights, daily[[0, 0, 2, 2, 4]])
    # turnover 2 (entry), 0, 4 (A,C -> B,D), 0, 4 (B,D -> D,C: B 1, D 2, C 1)
    costs = 1e-3 * np.array([2, 0, 4, 0, 4])
    gross = (daily[[0, 0, 2, 2, 4]] * SIMPLE).sum(axis=1)
    np.testing.assert_allclose(s.net, gross - costs, atol=1e-15)
    r = _report(cfg)
    assert (r.rebalances, r.rebalance_every, r.turnover) == (3, 2, pytest.approx(2.0))


def test_horizon_uses_non_overlapping_periods_and_rounds_rebalancing_up() -> None:
    # h = 2: periods d0, d2, d4 only; rebalance_days 3 -> every 2 periods (4 days)
    cfg = PortfolioConfig(top_k=1, bottom_k=1, rebalance_days=3, cost_bps=0)
    r = _report(cfg, horizon=2, ppy=126)
    assert (r.periods, r.rebalances, r.rebalance_every) == (3, 2, 4)
    s = _series(cfg, horizon=2)
    np.testing.assert_array_equal(s.dates, [0, 2, 4])
    np.testing.assert_array_equal(s.weights, _series(ONE_ONE).weights[[0, 0, 4]])
    ics = [spearmanr(PRED[t], SIMPLE[t]).statistic for t in (0, 2, 4)]
    assert r.rank_ic == pytest.approx(np.mean(ics))
    assert r.rank_ic_ir == pytest.approx(np.mean(ics) / np.std(ics, ddof=1) * math.sqrt(126))


def test_rank_ic_ir_and_tstat_against_scipy() -> None:
    r = _report(ONE_ONE)
    ics = np.array([spearmanr(PRED[t], SIMPLE[t]).statistic for t in range(5)])
    assert r.rank_ic == pytest.approx(ics.mean())
    assert r.rank_ic_ir == pytest.approx(ics.mean() / ics.std(ddof=1) * math.sqrt(252))
    assert r.rank_ic_tstat == pytest.approx(ics.mean() / (ics.std(ddof=1) / math.sqrt(5)))
    assert r.rank_ic_dates == 5


def test_quantile_buckets_by_mid_rank() -> None:
    # 4 names, fewer than 5 quintiles: one bucket per name, in prediction order
    ranked = np.take_along_axis(SIMPLE, np.argsort(PRED, axis=1, kind="stable"), axis=1)
    report = _report(ONE_ONE)
    assert report.n_quantiles == 4
    assert report.quantile_returns == pytest.approx([ranked[:, b].mean() for b in range(4)])


def test_quantiles_of_ten_names_are_pairs() -> None:
    rng = np.random.default_rng(3)
    pred, simple = rng.normal(size=(6, 10)), rng.normal(0, 0.02, (6, 10))
    report = portfolio_report(*_rows(pred, simple), PortfolioConfig(), 1, 252)
    assert report is not None
    ranked = np.take_along_axis(simple, np.argsort(pred, axis=1), axis=1)
    expected = [ranked[:, 2 * b : 2 * b + 2].mean() for b in range(5)]
    assert report.quantile_returns == pytest.approx(expected)


def test_too_few_tickers_clamps_each_side_to_half() -> None:
    r = _report(PortfolioConfig())  # 5 + 5 on 4 tickers -> 2 + 2 on every date
    assert r.clamped_rebalances == 5
    s = _series(PortfolioConfig())
    assert ((s.weights > 0).sum(axis=1) == 2).all() and ((s.weights < 0).sum(axis=1) == 2).all()


def test_a_held_ticker_without_a_row_is_out_that_day() -> None:
    dates, tickers, pred, log_ret = _rows(PRED, SIMPLE, TICKERS)
    keep = ~((dates == 1) & (tickers == "A"))  # A (held long from d0) has no row on d1
    cfg = PortfolioConfig(top_k=1, bottom_k=1, rebalance_days=5, cost_bps=0)
    g = grid(dates[keep], tickers[keep], pred[keep], log_ret[keep], 1)
    s = portfolio_series(g, cfg, 1)
    np.testing.assert_array_equal(s.weights[:3], [[1, 0, -1, 0], [0, 0, -1, 0], [1, 0, -1, 0]])


def test_single_ticker_has_no_portfolio_and_duplicates_are_refused() -> None:
    one = portfolio_report([0, 1, 2], ["A", "A", "A"], [0.1, 0.2, 0.3], [0.0] * 3, ONE_ONE, 1, 252)
    assert one is None
    with pytest.raises(ValueError, match="duplicate"):
        grid([0, 0], ["A", "A"], [0.1, 0.2], [0.0, 0.0], 1)


@pytest.mark.parametrize(
    "bad", [{"top_k": 0}, {"bottom_k": -1}, {"rebalance_days": 0}, {"cost_bps": -1}]
)
def test_config_is_validated(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PortfolioConfig(**bad)


# --- a synthetic 60-ticker panel: planted short-term reversal, and no signal --------------

N_TICKERS, N_DATES = 60, 1000  # four years of daily test windows
NOISE = 0.02


def _reversal_panel(k: float, seed: int) -> tuple:
    """Tomorrow's log return is -k x today's plus noise; the predictor is -today's return."""
    rng = np.random.default_rng(seed)
    today = rng.normal(0.0, NOISE, (N_DATES, N_TICKERS))
    tomorrow = -k * today + rng.normal(0.0, NOISE, (N_DATES, N_TICKERS))
    dates, tickers, pred, _ = _rows(-today, np.zeros_like(today))
    return dates, tickers, pred, tomorrow.ravel()


def _sharpe_tstat(report: PortfolioReport) -> float:
    """Annualised Sharpe in standard errors (about sqrt(years) per unit of Sharpe)."""
    assert report.sharpe is not None
    return report.sharpe * math.sqrt(report.periods / 252)


def test_planted_reversal_is_found() -> None:
    report = portfolio_report(*_reversal_panel(0.1, seed=11), PortfolioConfig(), 1, 252)
    assert report is not None
    print(report.model_dump())  # the numbers quoted in the closing note
    assert report.rank_ic is not None and report.rank_ic > 0.02
    assert report.rank_ic_tstat is not None and report.rank_ic_tstat > 5
    assert report.rank_ic_ir is not None and report.rank_ic_ir > 2
    assert _sharpe_tstat(report) > 3  # after 5 bps costs on a full turnover every day
    q = report.quantile_returns
    assert all(a is not None and b is not None and a < b for a, b in itertools.pairwise(q))
    assert report.long_short_spread is not None and report.long_short_spread > 0


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_no_signal_is_consistent_with_zero(seed: int) -> None:
    # No costs: without skill the true Sharpe is exactly zero (costs would make it negative).
    cfg = PortfolioConfig(cost_bps=0)
    report = portfolio_report(*_reversal_panel(0.0, seed=seed), cfg, 1, 252)
    assert report is not None
    print(report.model_dump())
    assert report.rank_ic_tstat is not None and abs(report.rank_ic_tstat) < 3
    assert abs(_sharpe_tstat(report)) < 3
    q = report.quantile_returns
    assert q[0] is not None and q[-1] is not None
    # 12 names a quintile on each of N_DATES dates: the standard error of top minus bottom
    assert abs(q[-1] - q[0]) < 3 * NOISE * math.sqrt(2 / (12 * N_DATES))


# --- wiring: walk-forward report, MLflow names, files ----------------------------------


def _oos(n_tickers: int, n_dates: int = 40) -> OutOfSample:
    dates, tickers, pred, y_true = _reversal_panel(0.05, seed=5)
    keep = (dates < n_dates) & np.isin(tickers, [f"T{i:03d}" for i in range(n_tickers)])
    day0 = np.datetime64("2026-01-01")
    return OutOfSample(
        fold=(dates[keep] >= n_dates // 2).astype(int),
        dates=day0 + dates[keep],
        tickers=tickers[keep],
        y_true=y_true[keep],
        y_pred=pred[keep],
        last_return=-pred[keep],
    )


def _walk_forward(oos: OutOfSample, **kwargs: Any) -> Any:
    day = dt.date(2026, 1, 1)
    folds = [Fold(k, dt.date(2025, 1, 1), dt.date(2025, 12, 31), day, day, 250, 20) for k in (0, 1)]
    cfg = StrategyConfig(bootstrap_samples=100)
    return walk_forward_report(oos, folds, cfg, 1, TrialSet(1, 0.0), **kwargs)


def test_walk_forward_report_carries_the_block_for_panels_only() -> None:
    cfg = PortfolioConfig(top_k=2, bottom_k=2)
    panel = _walk_forward(_oos(8), portfolio=cfg)
    assert panel.portfolio is not None and panel.portfolio.top_k == 2
    assert panel.portfolio.n_tickers == 8
    flat = flat_metrics(panel, "oos_")
    assert flat["oos_portfolio_sharpe"] == panel.portfolio.sharpe
    assert flat["oos_portfolio_rank_ic_tstat"] == panel.portfolio.rank_ic_tstat
    assert {f"oos_portfolio_q{q}_return" for q in range(1, 6)} <= set(flat)
    assert "oos_portfolio_cost_bps" not in flat  # configuration is not a metric
    single = _walk_forward(_oos(1))
    assert single.portfolio is None
    assert not any(k.startswith("portfolio_") for k in flat_metrics(single))


def test_report_files_add_the_portfolio_plots_for_a_panel(tmp_path: Path) -> None:
    oos = _oos(8)
    report = _walk_forward(oos)
    paths = write_report_files(tmp_path, report, oos, StrategyConfig(), 1)
    names = {p.name for p in paths}
    assert {"portfolio_returns.png", "portfolio_quantiles.png"} <= names
    for name in ("portfolio_returns.png", "portfolio_quantiles.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    single = _oos(1)
    paths = write_report_files(tmp_path / "one", _walk_forward(single), single, StrategyConfig(), 1)
    assert not any(p.name.startswith("portfolio_") for p in paths)


def test_the_block_round_trips_through_json() -> None:
    report = _walk_forward(_oos(8))
    doc = report.model_dump(mode="json")
    assert set(doc["portfolio"]) >= {
        "sharpe",
        "annual_return",
        "annual_volatility",
        "max_drawdown",
        "turnover",
        "hit_rate",
        "long_short_spread",
        "quantile_returns",
        "rank_ic",
        "rank_ic_ir",
        "rank_ic_tstat",
    }
    assert type(report).model_validate(doc) == report
