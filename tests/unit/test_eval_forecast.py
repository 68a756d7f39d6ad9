"""Forecast metrics on tiny hand-computed examples (pipeline.evaluation.forecast)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.evaluation import forecast
from pipeline.evaluation.forecast import (
    FORECAST_METRICS,
    average_ranks,
    forecast_metrics,
    information_coefficient,
    mape_price,
    r2_vs_zero,
    rank_ic,
)

# Shared toy example (scale-free metrics use it as is; forecast_metrics uses it / 100).
Y = np.array([2.0, -1.0, 3.0, -4.0])
P = np.array([1.0, 1.0, 2.0, -2.0])


def test_mape_on_prices_by_hand() -> None:
    # realised price ratios 1.25, 0.8, 1.0; predicted ratios 1.0, 1.0, 1.1
    # |1.0 - 1.25| / 1.25 = 0.2 ; |1.0 - 0.8| / 0.8 = 0.25 ; |1.1 - 1.0| / 1.0 = 0.1
    # mean = 0.55 / 3 = 0.18333...
    y_true = np.log([1.25, 0.8, 1.0])
    y_pred = np.log([1.0, 1.0, 1.1])
    assert mape_price(y_true, y_pred) == pytest.approx(0.55 / 3, rel=1e-12)


def test_mape_is_finite_when_realised_returns_are_zero() -> None:
    # a return-based MAPE would divide by 0 here; on prices |e^0.1 - 1| / 1 = 0.105170918...
    assert mape_price([0.0, 0.0], [0.1, 0.1]) == pytest.approx(0.10517091807564763)
    assert mape_price([0.0, 0.0], [0.0, 0.0]) == 0.0


def test_r2_vs_zero_by_hand() -> None:
    # errors y - p = 1, -2, 1, -2 -> squares 1, 4, 1, 4 -> 10 ; sum y^2 = 4 + 1 + 9 + 16 = 30
    # R2 = 1 - 10 / 30 = 2/3
    assert r2_vs_zero(Y, P) == pytest.approx(2 / 3)
    assert r2_vs_zero(Y, np.zeros(4)) == 0.0  # the zero forecast scores exactly 0
    assert r2_vs_zero(Y, 2 * Y) == pytest.approx(0.0)  # 1 - sum(y^2)/sum(y^2)
    assert math.isnan(r2_vs_zero(np.zeros(3), [1.0, 2.0, 3.0]))


def test_ic_by_hand() -> None:
    # mean y = 0, mean p = 0.5 ; dy = 2, -1, 3, -4 ; dp = 0.5, 0.5, 1.5, -2.5
    # sum dy*dp = 1 - 0.5 + 4.5 + 10 = 15 ; sum dy^2 = 30 ; sum dp^2 = 0.25+0.25+2.25+6.25 = 9
    # IC = 15 / sqrt(270) = sqrt(5/6) = 0.9128709...
    assert information_coefficient(Y, P) == pytest.approx(math.sqrt(5 / 6))


def test_rank_ic_with_ties_by_hand() -> None:
    # ranks of y [2, -1, 3, -4] -> [3, 2, 4, 1]
    # ranks of p [1, 1, 2, -2]  -> the two 1s share ranks 2 and 3 -> [2.5, 2.5, 4, 1]
    # both mean 2.5 ; d_ry = .5, -.5, 1.5, -1.5 ; d_rp = 0, 0, 1.5, -1.5
    # cov = 2.25 + 2.25 = 4.5 ; ss_ry = .25+.25+2.25+2.25 = 5 ; ss_rp = 4.5
    # rank IC = 4.5 / sqrt(22.5) = sqrt(0.9) = 0.9486833...
    np.testing.assert_array_equal(average_ranks(P), [2.5, 2.5, 4.0, 1.0])
    assert rank_ic(Y, P) == pytest.approx(math.sqrt(0.9))


def test_numpy_rank_fallback_matches_hand_values() -> None:
    a = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    # sorted: 1, 1, 2, 3, 3, 3 -> ones share ranks 1-2 (1.5), 2 -> 3, threes share 4-6 (5)
    expected = [5.0, 1.5, 5.0, 3.0, 5.0, 1.5]
    np.testing.assert_array_equal(forecast._numpy_average_ranks(a), expected)
    np.testing.assert_array_equal(average_ranks(a), expected)


def test_grouped_ic_averages_per_group_and_skips_degenerate_groups() -> None:
    # date 1: y = [1, 2, 3], p = [1, 3, 2]: dy = -1, 0, 1 ; dp = -1, 1, 0 -> 1 / sqrt(2*2) = 0.5
    # date 2: y = [1, 2, 3], p = [3, 2, 1] -> -1
    # date 3: a single row -> skipped ; date 4: constant prediction -> skipped
    # IC = mean(0.5, -1) = -0.25
    groups = np.array(["d1", "d1", "d1", "d2", "d2", "d2", "d3", "d4", "d4"])
    y = np.array([1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 9.0, 1.0, 2.0])
    p = np.array([1.0, 3.0, 2.0, 3.0, 2.0, 1.0, 9.0, 5.0, 5.0])
    assert information_coefficient(y, p, groups) == pytest.approx(-0.25)
    # values equal their within-group ranks here, so the rank IC is the same -0.25
    assert rank_ic(y, p, groups) == pytest.approx(-0.25)
    # the pooled correlation is a different number: grouping really is applied
    assert information_coefficient(y, p) != pytest.approx(-0.25)


def test_rank_ic_ranks_within_groups() -> None:
    # group a: y = [10, 20], p = [1, 2] -> +1 ; group b: y = [30, 40], p = [-5, -6] -> -1
    # pooled Spearman would be driven by the level difference between groups; grouped = 0
    groups = ["a", "a", "b", "b"]
    y = [10.0, 20.0, 30.0, 40.0]
    p = [1.0, 2.0, -5.0, -6.0]
    assert rank_ic(y, p, groups) == pytest.approx(0.0)
    # pooled: ranks y = [1, 2, 3, 4], ranks p = [3, 4, 2, 1]
    # deviations -1.5, -.5, .5, 1.5 and .5, 1.5, -.5, -1.5
    # cov = -.75 - .75 - .25 - 2.25 = -4 ; ss = 5, 5 -> -0.8
    assert rank_ic(y, p) == pytest.approx(-0.8)


def test_ic_is_nan_when_undefined() -> None:
    assert math.isnan(information_coefficient(Y, np.zeros(4)))
    assert math.isnan(rank_ic(Y, np.zeros(4)))
    assert math.isnan(information_coefficient([1.0], [2.0]))
    assert math.isnan(information_coefficient(Y, P, groups=["a", "b", "c", "d"]))
    # a constant with rounding residue in its mean still counts as constant
    assert math.isnan(information_coefficient(Y, np.full(4, 0.1)))


def test_forecast_metrics_by_hand() -> None:
    y, p = Y / 100, P / 100
    m = forecast_metrics(y, p)
    assert tuple(m) == FORECAST_METRICS
    # errors 0.01, -0.02, 0.01, -0.02 -> mean square 0.001 / 4 = 0.00025
    assert m["rmse"] == pytest.approx(math.sqrt(0.00025))
    assert m["mae"] == pytest.approx(0.06 / 4)
    # p - y = -0.01, 0.02, -0.01, 0.02 -> |e^-0.01 - 1| = 0.00995016625, e^0.02 - 1 = 0.02020134003
    # mean = (0.00995016625 + 0.02020134003) / 2 = 0.01507575314
    assert m["mape"] == pytest.approx(0.01507575314, rel=1e-9)
    assert m["r2"] == pytest.approx(2 / 3)
    # signs y: + - + - ; p: + + + - -> matches at rows 0, 2, 3 -> 0.75
    assert m["directional_accuracy"] == 0.75
    assert m["ic"] == pytest.approx(math.sqrt(5 / 6))
    assert m["rank_ic"] == pytest.approx(math.sqrt(0.9))


def test_forecast_metrics_zero_baseline_does_not_raise() -> None:
    m = forecast_metrics(Y / 100, np.zeros(4))
    assert m["r2"] == 0.0
    assert math.isnan(m["ic"]) and math.isnan(m["rank_ic"])
    assert m["directional_accuracy"] == 0.5  # rows 1 and 3 are non-positive


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        forecast_metrics([0.1, 0.2], [0.1])
    with pytest.raises(ValueError):
        information_coefficient([0.1, 0.2], [0.1, 0.3], groups=["a"])
