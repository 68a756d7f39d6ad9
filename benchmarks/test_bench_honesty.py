"""The bootstrap Sharpe interval at full size: 1,000 resamples of 1,250 daily returns (5 years).

Every walk-forward report computes one. Timed here, not asserted in tests/ (tests assert
behaviour only; tests/unit/test_eval_honesty.py checks that the resamples are drawn at once).
It used to be a `< 1 s` assertion; it takes about 30 ms on a 2-core machine.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from pipeline.evaluation.honesty import stationary_bootstrap_sharpe_ci


@pytest.mark.benchmark(group="honesty")
def test_bench_bootstrap_sharpe_ci(benchmark: Any) -> None:
    returns = np.random.default_rng(6).normal(0.0005, 0.01, 1250)
    low, high = benchmark(stationary_bootstrap_sharpe_ci, returns, n_boot=1000)
    assert math.isfinite(low) and low < high
