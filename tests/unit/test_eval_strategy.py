"""Strategy returns and metrics on tiny hand-computed series (pipeline.evaluation.strategy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.evaluation.strategy import (
    STRATEGY_METRICS,
    Mode,
    buy_and_hold,
    max_drawdown,
    panel_strategy_returns,
    positions,
    strategy_metrics,
)

R = np.log([1.1, 0.9, 1.05])  # simple returns +10%, -10%, +5%
PRED = np.array([0.01, -0.02, 0.03])  # signs + - +


def _one_ticker(
    pred: np.ndarray,
    r: np.ndarray,
    mode: Mode = "long_flat",
    cost_bps: float = 0.0,
    horizon: int = 1,
) -> np.ndarray:
    """The strategy's net returns on a single ticker: the panel code with one name."""
    tickers = np.array(["A"] * r.size)
    return panel_strategy_returns(
        np.arange(r.size), tickers, pred, r, mode, cost_bps=cost_bps, horizon=horizon
    ).returns


def test_positions_modes_and_threshold() -> None:
    pred = np.array([0.02, 0.005, 0.0, -0.005, -0.02])
    np.testing.assert_array_equal(positions(pred), [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(positions(pred, "long_short"), [1, 1, 0, -1, -1])
    np.testing.assert_array_equal(positions(pred, "long_flat", 0.01), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(positions(pred, "long_short", 0.01), [1, 0, 0, 0, -1])
    with pytest.raises(ValueError):
        positions(pred, "short_only")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        positions(pred, threshold=-0.1)


def test_long_flat_with_costs_by_hand() -> None:
    pos = positions(PRED)  # [1, 0, 1]
    rets = _one_ticker(PRED, R, cost_bps=10)
    # 10 bps = 0.001 per unit of turnover; previous position before the start is 0
    # t0: 1 * 0.10 - 0.001 * |1 - 0| = 0.099
    # t1: 0 * -0.10 - 0.001 * |0 - 1| = -0.001
    # t2: 1 * 0.05 - 0.001 * |1 - 0| = 0.049
    np.testing.assert_allclose(rets, [0.099, -0.001, 0.049], atol=1e-15)
    m = strategy_metrics(rets, positions=pos)
    # 1.099 * 0.999 = 1.097901 ; * 1.049 = 1.151698149
    assert m["total_return"] == pytest.approx(0.151698149, rel=1e-12)
    assert m["turnover"] == pytest.approx(1.0)  # |Δpos| = 1, 1, 1
    assert m["exposure"] == pytest.approx(2 / 3)
    assert m["hit_rate"] == 1.0  # in the market at t0 and t2, both positive


def test_long_short_with_costs_by_hand() -> None:
    pos = positions(PRED, "long_short")  # [1, -1, 1]
    rets = _one_ticker(PRED, R, "long_short", cost_bps=10)
    # t0: 0.10 - 0.001 * 1 = 0.099
    # t1: -1 * -0.10 - 0.001 * |-1 - 1| = 0.1 - 0.002 = 0.098
    # t2: 0.05 - 0.001 * |1 - -1| = 0.048
    np.testing.assert_allclose(rets, [0.099, 0.098, 0.048], atol=1e-15)
    m = strategy_metrics(rets, positions=pos)
    # 1.099 * 1.098 = 1.206702 ; * 1.048 = 1.264623696
    assert m["total_return"] == pytest.approx(0.264623696, rel=1e-12)
    assert m["turnover"] == pytest.approx(5 / 3)  # 1, 2, 2
    assert m["exposure"] == 1.0


def _one_ticker_buy_and_hold(r: np.ndarray, cost_bps: float = 0.0, horizon: int = 1) -> np.ndarray:
    tickers = np.array(["A"] * r.size)
    return buy_and_hold(np.arange(r.size), tickers, r, cost_bps, horizon).returns


def test_zero_cost_and_buy_and_hold() -> None:
    np.testing.assert_allclose(_one_ticker(np.ones(3), R), [0.1, -0.1, 0.05])
    np.testing.assert_allclose(_one_ticker_buy_and_hold(R), [0.1, -0.1, 0.05])
    # buy and hold compounds to the price ratio: 1.1 * 0.9 * 1.05 = 1.0395
    assert strategy_metrics(_one_ticker_buy_and_hold(R))["total_return"] == pytest.approx(0.0395)
    # it pays what the strategy pays: 10 bps to enter on the first day, nothing after
    np.testing.assert_allclose(
        _one_ticker_buy_and_hold(R, cost_bps=10), [0.099, -0.1, 0.05], atol=1e-15
    )


def test_buy_and_hold_rebalances_a_panel_equally() -> None:
    # A on d1 and d2, B joins on d2: weights 1 -> 0.5/0.5, turnover 1 then 0.5 + 0.5
    dates = np.array(["d1", "d2", "d2"])
    tickers = np.array(["A", "A", "B"])
    r = np.log([1.1, 1.2, 0.8])
    res = buy_and_hold(dates, tickers, r, cost_bps=100)
    np.testing.assert_allclose(res.weights, [[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(res.returns, [0.1 - 0.01, 0.5 * 0.2 - 0.5 * 0.2 - 0.01])


def test_horizon_uses_non_overlapping_rows() -> None:
    # 2-day targets on 5 rows: rows 0, 2, 4 are traded, rows 1 and 3 overlap them and are dropped
    r2 = np.log([1.2, 9.0, 0.5, 9.0, 1.1])
    pred = np.array([1.0, 1.0, 1.0, 0.0, 0.0])  # long, long, long, flat, flat
    # t0: 0.2 - 0.001 ; t2: 1 * -0.5 - 0 (no change) ; t4: 0 - 0.001 * |0 - 1|
    np.testing.assert_allclose(
        _one_ticker(pred, r2, cost_bps=10, horizon=2), [0.199, -0.5, -0.001], atol=1e-15
    )
    np.testing.assert_allclose(_one_ticker_buy_and_hold(r2, horizon=2), [0.2, -0.5, 0.1])
    with pytest.raises(ValueError):
        _one_ticker(pred, r2, horizon=0)


def test_panel_two_tickers_by_hand() -> None:
    # A: returns +10%, -10%, +5%, preds + - + -> pos 1, 0, 1 -> weights .5, 0, .5
    # B: returns -5%, +20%, 0%,   preds + + - -> pos 1, 1, 0 -> weights .5, .5, 0
    dates = np.array(["d1", "d1", "d2", "d2", "d3", "d3"])
    tickers = np.array(["A", "B", "A", "B", "A", "B"])
    realised = np.log([1.1, 0.95, 0.9, 1.2, 1.05, 1.0])
    pred = np.array([0.01, 0.01, -0.01, 0.01, 0.01, -0.01])
    # d1: .5 * .1 + .5 * -.05 = .025 ; turnover .5 + .5 = 1 -> cost .001 -> .024
    # d2: 0 * -.1 + .5 * .2 = .1 ; turnover |0 - .5| + |.5 - .5| = .5 -> .0005 -> .0995
    # d3: .5 * .05 + 0 * 0 = .025 ; turnover .5 + .5 = 1 -> .001 -> .024
    expected = [0.024, 0.0995, 0.024]
    res = panel_strategy_returns(dates, tickers, pred, realised, cost_bps=10)
    np.testing.assert_array_equal(res.dates, ["d1", "d2", "d3"])
    np.testing.assert_allclose(res.returns, expected, atol=1e-15)
    np.testing.assert_allclose(res.weights, [[0.5, 0.5], [0.0, 0.5], [0.5, 0.0]])
    # row order must not matter
    perm = np.array([5, 2, 0, 3, 1, 4])
    shuffled = panel_strategy_returns(
        dates[perm], tickers[perm], pred[perm], realised[perm], cost_bps=10
    )
    np.testing.assert_allclose(shuffled.returns, expected, atol=1e-15)
    m = strategy_metrics(res.returns, positions=res.weights)
    assert m["turnover"] == pytest.approx(2.5 / 3)  # 1, .5, 1
    assert m["exposure"] == pytest.approx(2 / 3)  # gross 1, .5, .5


def test_panel_ticker_count_changes_and_long_short() -> None:
    # d1: A and B present ; d2: only A -> A's weight is 1/1 there
    dates = np.array([1, 1, 2])
    tickers = np.array(["A", "B", "A"])
    realised = np.log([1.1, 0.8, 1.2])
    pred = np.array([0.01, -0.01, 0.01])
    res = panel_strategy_returns(dates, tickers, pred, realised, mode="long_short", cost_bps=10)
    # d1: weights A .5, B -.5 -> .5 * .1 + -.5 * -.2 = .15 ; turnover 1 -> .149
    # d2: weights A 1, B 0 -> .2 ; turnover |1 - .5| + |0 + .5| = 1 -> .199
    np.testing.assert_allclose(res.returns, [0.149, 0.199], atol=1e-15)
    with pytest.raises(ValueError, match="duplicate"):
        panel_strategy_returns([1, 1], ["A", "A"], [0.1, 0.1], [0.0, 0.0])


def test_panel_horizon_trades_every_hth_date() -> None:
    dates = np.repeat([1, 2, 3], 2)
    tickers = np.tile(["A", "B"], 3)
    realised = np.log([1.1, 0.9, 5.0, 5.0, 1.2, 1.0])
    res = panel_strategy_returns(dates, tickers, np.ones(6), realised, horizon=2)
    np.testing.assert_array_equal(res.dates, [1, 3])
    # date 1: .5 * .1 + .5 * -.1 = 0 ; date 3: .5 * .2 + .5 * 0 = .1
    np.testing.assert_allclose(res.returns, [0.0, 0.1], atol=1e-15)


def test_max_drawdown_calmar_sharpe_sortino_on_known_path() -> None:
    r = np.array([0.1, -0.2, 0.25, -0.1])
    # equity 1 -> 1.1 -> 0.88 -> 1.1 -> 0.99 ; peak 1.1 ; worst 1 - 0.88 / 1.1 = 0.2
    m = strategy_metrics(r, periods_per_year=4)
    assert tuple(m) == STRATEGY_METRICS
    assert m["max_drawdown"] == pytest.approx(0.2)
    assert m["total_return"] == pytest.approx(-0.01)
    # 4 periods at 4 per year -> exactly one year, annual return = total return
    assert m["annual_return"] == pytest.approx(-0.01)
    assert m["calmar"] == pytest.approx(-0.01 / 0.2)
    # mean = 0.05 / 4 = 0.0125 ; deviations .0875, -.2125, .2375, -.1125
    # squares .00765625 + .04515625 + .05640625 + .01265625 = .121875 ; / 3 = .040625
    # sharpe = .0125 / sqrt(.040625) * sqrt(4) = sqrt(1/65) = 0.124034734...
    assert m["sharpe"] == pytest.approx(math.sqrt(1 / 65))
    assert m["annual_volatility"] == pytest.approx(math.sqrt(0.040625 * 4))
    # downside: min(r, 0)^2 = 0, .04, 0, .01 -> mean .0125 ; .0125 / sqrt(.0125) * 2 = sqrt(.05)
    assert m["sortino"] == pytest.approx(math.sqrt(0.05))
    # no positions passed -> hit rate over nonzero returns: 2 of 4 positive
    assert m["hit_rate"] == 0.5
    assert math.isnan(m["turnover"]) and math.isnan(m["exposure"])


def test_drawdown_counts_a_first_period_loss_and_annualises_geometrically() -> None:
    assert max_drawdown([-0.5, 1.0]) == pytest.approx(0.5)
    assert max_drawdown([0.1, 0.2]) == 0.0
    # growth 1.21 over 504 daily periods = 2 years -> 1.21 ** (1 / 2) - 1 = 0.1 a year
    r = np.full(504, 1.21 ** (1 / 504) - 1)
    assert strategy_metrics(r)["annual_return"] == pytest.approx(0.1)


def test_degenerate_cases_return_nan_without_raising() -> None:
    const = strategy_metrics(np.full(5, 0.01))
    assert math.isnan(const["sharpe"])  # zero std (up to rounding)
    assert math.isnan(const["sortino"])  # no downside
    assert const["max_drawdown"] == 0.0
    assert math.isnan(const["calmar"])  # no drawdown
    flat = strategy_metrics(np.zeros(4), positions=np.zeros(4))
    assert math.isnan(flat["sharpe"]) and math.isnan(flat["hit_rate"])
    assert flat["turnover"] == 0.0 and flat["exposure"] == 0.0
    one = strategy_metrics([0.05])
    assert one["total_return"] == pytest.approx(0.05)
    assert math.isnan(one["sharpe"]) and math.isnan(one["annual_volatility"])
    assert all(math.isnan(v) for v in strategy_metrics([]).values())
    wiped = strategy_metrics([-1.0, 0.1])
    assert wiped["annual_return"] == -1.0 and wiped["max_drawdown"] == 1.0


def test_hit_rate_uses_positions_when_given() -> None:
    # flat at t1 but paying the exit cost: the -0.001 must not count as a losing trade
    rets = np.array([0.099, -0.001, -0.02, 0.049])
    pos = np.array([1.0, 0.0, 1.0, 1.0])
    assert strategy_metrics(rets, positions=pos)["hit_rate"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        strategy_metrics(rets, positions=pos[:3])
