"""Bootstrap Sharpe intervals, PSR and DSR (pipeline.evaluation.honesty); a null sanity check."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pipeline.evaluation import honesty
from pipeline.evaluation.forecast import directional_accuracy
from pipeline.evaluation.honesty import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_moments,
    stationary_bootstrap_indices,
    stationary_bootstrap_sharpe_ci,
)
from pipeline.evaluation.strategy import panel_strategy_returns, strategy_metrics

# ---------------------------------------------------------------- PSR / DSR


def test_psr_of_zero_sharpe_is_one_half() -> None:
    assert probabilistic_sharpe_ratio(0.0, 250, 0.0, 3.0) == pytest.approx(0.5)
    assert probabilistic_sharpe_ratio(0.0, 250, -1.0, 10.0) == pytest.approx(0.5)


def test_psr_by_hand() -> None:
    # SR = 0.1, T = 101, skew 0, kurt 3: variance term 1 - 0 + (3 - 1) / 4 * 0.01 = 1.005
    # z = 0.1 * sqrt(100) / sqrt(1.005) = 1 / 1.002496883 = 0.997509336
    # Phi(0.997509336) = 0.840741328  (normal table: Phi(1.00) = 0.84134)
    assert probabilistic_sharpe_ratio(0.1, 101, 0.0, 3.0) == pytest.approx(0.840741328, abs=1e-8)
    # against a benchmark equal to the Sharpe itself the probability is one half
    assert probabilistic_sharpe_ratio(0.1, 101, 0.0, 3.0, benchmark=0.1) == pytest.approx(0.5)


def test_psr_penalises_negative_skew_and_fat_tails() -> None:
    base = probabilistic_sharpe_ratio(0.1, 101, 0.0, 3.0)
    assert probabilistic_sharpe_ratio(0.1, 101, -1.0, 3.0) < base
    assert probabilistic_sharpe_ratio(0.1, 101, 0.0, 10.0) < base
    # variance term 1 - 20 * 0.1 + ... < 0 is undefined, not an exception
    assert math.isnan(probabilistic_sharpe_ratio(0.1, 101, 20.0, 3.0))


def test_dsr_by_hand_from_the_paper_formula() -> None:
    # SR = 0.1 per period, T = 1250, skew 0, kurt 3, N = 10 trials, V = 0.001
    # Phi^-1(1 - 1/10) = Phi^-1(0.9) = 1.281551566
    # 1/(10 e) = 0.036787944 -> Phi^-1(0.963212056) = 1.789241765
    # (1 - 0.577215665) * 1.281551566 = 0.541819927 ; 0.577215665 * 1.789241765 = 1.032778375
    # sum = 1.574598301 ; sqrt(0.001) = 0.031622777 ; SR0 = 0.049793170
    # numerator (0.1 - 0.049793170) * sqrt(1249) = 0.050206830 * 35.341194 = 1.774369313
    # denominator sqrt(1 - 0 + 2/4 * 0.01) = sqrt(1.005) = 1.002496883
    # z = 1.769949955 ; DSR = Phi(z) = 0.961632261
    assert expected_max_sharpe(10, 0.001) == pytest.approx(0.049793170, abs=1e-9)
    assert deflated_sharpe_ratio(0.1, 10, 1250, 0.0, 3.0, 0.001) == pytest.approx(
        0.961632261, abs=1e-8
    )


def test_dsr_decreases_with_more_trials_and_reduces_to_psr_for_one() -> None:
    dsr = [deflated_sharpe_ratio(0.05, n, 1250, -0.3, 5.0, 0.0004) for n in (1, 2, 10, 100, 1000)]
    assert all(a > b for a, b in itertools.pairwise(dsr))
    assert dsr[0] == pytest.approx(probabilistic_sharpe_ratio(0.05, 1250, -0.3, 5.0))
    assert expected_max_sharpe(1, 0.5) == 0.0


def test_expected_max_sharpe_is_close_to_simulated_maximum() -> None:
    # independent check of SR0: the mean of the max of N normal draws with variance V
    rng = np.random.default_rng(7)
    for n_trials in (10, 100):
        sims = rng.normal(0.0, math.sqrt(0.002), size=(20_000, n_trials)).max(axis=1).mean()
        assert expected_max_sharpe(n_trials, 0.002) == pytest.approx(sims, rel=0.05)


def test_sharpe_moments_by_hand() -> None:
    # r = 1, 2, 3, 4: mean 2.5 ; d = -1.5, -.5, .5, 1.5 ; m2 = 5 / 4 = 1.25 ; m3 = 0
    # m4 = (5.0625 + .0625 + .0625 + 5.0625) / 4 = 2.5625 ; kurt = 2.5625 / 1.5625 = 1.64
    # sample std (ddof=1) = sqrt(5 / 3) ; Sharpe = 2.5 / sqrt(5/3) = 1.936491673
    sr, skew, kurt = sharpe_moments([1.0, 2.0, 3.0, 4.0])
    assert sr == pytest.approx(1.936491673)
    assert skew == pytest.approx(0.0, abs=1e-12)
    assert kurt == pytest.approx(1.64)
    assert all(math.isnan(v) for v in sharpe_moments([0.01, 0.01, 0.01]))


# ---------------------------------------------------------------- stationary bootstrap


def test_bootstrap_indices_have_geometric_blocks() -> None:
    rng = np.random.default_rng(1)
    idx = stationary_bootstrap_indices(500, 400, 10.0, rng)
    assert idx.shape == (400, 500)
    assert idx.min() >= 0 and idx.max() < 500
    continues = (idx[:, 1:] == (idx[:, :-1] + 1) % 500).mean()
    # a block continues with probability 1 - 1/10 (+ ~1/500 chance of a new start landing there)
    assert continues == pytest.approx(0.9, abs=0.01)
    iid = stationary_bootstrap_indices(500, 400, 1.0, rng)
    assert (iid[:, 1:] == (iid[:, :-1] + 1) % 500).mean() < 0.01


def _returns(n: int, seed: int, mean: float = 0.0005) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, 0.01, n)


def test_bootstrap_ci_contains_sample_sharpe_and_is_reproducible() -> None:
    r = _returns(1250, 3)
    sharpe = strategy_metrics(r)["sharpe"]
    low, high = stationary_bootstrap_sharpe_ci(r, seed=11)
    assert low < sharpe < high
    assert stationary_bootstrap_sharpe_ci(r, seed=11) == (low, high)
    assert stationary_bootstrap_sharpe_ci(r, seed=12) != (low, high)


def test_iid_bootstrap_matches_the_analytic_sharpe_standard_error() -> None:
    # for i.i.d. normal returns (Lo, 2002) the per-period Sharpe SR has standard error
    # sqrt((1 + SR^2 / 2) / n); annualised, se = sqrt(252 * (1 + SR^2 / 2) / n) ~ 0.449 for
    # n = 1250, so the 95% interval is about sharpe +- 1.96 * 0.449 = +-0.88
    r = _returns(1250, 3)
    sharpe = strategy_metrics(r)["sharpe"]
    sr = sharpe / math.sqrt(252)
    se = math.sqrt(252 * (1 + sr**2 / 2) / 1250)
    low, high = stationary_bootstrap_sharpe_ci(r, mean_block=1, seed=11)
    assert (high - low) / 2 == pytest.approx(1.96 * se, rel=0.1)
    assert abs((high + low) / 2 - sharpe) < 0.2 * se


def test_bootstrap_ci_narrower_with_more_data() -> None:
    short = stationary_bootstrap_sharpe_ci(_returns(250, 4))
    long = stationary_bootstrap_sharpe_ci(_returns(2500, 4))
    assert (long[1] - long[0]) < 0.5 * (short[1] - short[0])  # width ~ 1 / sqrt(n): ratio ~0.32


def test_bootstrap_blocks_widen_ci_for_autocorrelated_returns() -> None:
    # AR(1) with phi = 0.6: the mean's variance is (1 + phi) / (1 - phi) = 4x the i.i.d. one
    rng = np.random.default_rng(5)
    e = rng.normal(0.0, 0.01, 2000)
    r = np.empty_like(e)
    r[0] = e[0]
    for t in range(1, e.size):
        r[t] = 0.6 * r[t - 1] + e[t]
    iid = stationary_bootstrap_sharpe_ci(r, mean_block=1)
    block = stationary_bootstrap_sharpe_ci(r, mean_block=20)
    assert (block[1] - block[0]) > 1.5 * (iid[1] - iid[0])


def test_bootstrap_draws_all_resamples_at_once_and_handles_degenerate_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Full size (5 years, 1,000 resamples) in one vectorised draw of a (1000, 1250) index
    # matrix, not a Python loop per resample. How long it takes is a benchmark:
    # benchmarks/test_bench_honesty.py.
    draws: list[tuple[int, ...]] = []

    def spy(n: int, n_boot: int, mean_block: float, rng: np.random.Generator) -> np.ndarray:
        idx = stationary_bootstrap_indices(n, n_boot, mean_block, rng)
        draws.append(idx.shape)
        return idx

    monkeypatch.setattr(honesty, "stationary_bootstrap_indices", spy)
    r = _returns(1250, 6)
    low, high = stationary_bootstrap_sharpe_ci(r, n_boot=1000)
    assert draws == [(1000, 1250)]
    assert math.isfinite(low) and low < strategy_metrics(r)["sharpe"] < high
    assert all(math.isnan(v) for v in stationary_bootstrap_sharpe_ci([0.01]))
    assert all(math.isnan(v) for v in stationary_bootstrap_sharpe_ci(np.zeros(100)))


# ---------------------------------------------------------------- null sanity check


def _null_panel(seed: int, leak: bool = False) -> tuple[float, int, tuple[float, float]]:
    """5 random-walk tickers x 250 days; predict tomorrow with today's return (no skill)."""
    rng = np.random.default_rng(seed)
    n_days, n_tickers = 250, 5
    log_ret = rng.normal(0.0, 0.02, size=(n_days + 1, n_tickers))
    realised = log_ret[1:].ravel()  # forward return from day t to t+1
    pred = realised.copy() if leak else log_ret[:-1].ravel()  # known at t's close
    dates = np.repeat(np.arange(n_days), n_tickers)
    tickers = np.tile(np.arange(n_tickers), n_days)
    acc = directional_accuracy(realised, pred)
    res = panel_strategy_returns(dates, tickers, pred, realised, mode="long_short")
    return acc, realised.size, stationary_bootstrap_sharpe_ci(res.returns, seed=seed)


def _rejects(acc: float, n: int, ci: tuple[float, float]) -> bool:
    half_width = 2.5758 * math.sqrt(0.25 / n)  # 99% normal approximation to Binomial(n, 0.5)
    return abs(acc - 0.5) > half_width or not ci[0] <= 0.0 <= ci[1]


def test_no_skill_predictions_look_like_no_skill() -> None:
    acc, n, ci = _null_panel(seed=0)
    assert abs(acc - 0.5) < 2.5758 * math.sqrt(0.25 / n)
    assert ci[0] < 0.0 < ci[1]
    # over 20 seeds a 95% CI and a 99% accuracy band should reject ~1 time, not more than 2
    assert sum(_rejects(*_null_panel(seed)) for seed in range(20)) <= 2


def test_leaky_predictions_are_detected() -> None:
    # power check for the test above: peeking at the realised return must be flagged
    acc, n, ci = _null_panel(seed=0, leak=True)
    assert acc == 1.0
    assert ci[0] > 0.0
    assert _rejects(acc, n, ci)
