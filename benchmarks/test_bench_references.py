"""The hand-tuned Polars reference and the floor, timed in the same run as the engine.

The hand-tuned pipeline (``polars_reference``) is the bar the engine has to reach per output
cell; the floor (sort + one cheap whole-column pass per output column) is what no
implementation can beat. Both share the ``features`` group with ``test_bench_engine`` and the
pandas reference, and record their means for the ratios printed at the end of the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pytest
from polars_reference import floor_features, polars_features
from test_bench_features import ATOL, GROUP, RTOL, _record, run_engine

if TYPE_CHECKING:
    from conftest import BenchConfig, BenchResults, FeatureSet


@pytest.mark.benchmark(group=GROUP)
def test_bench_polars_reference(
    benchmark: Any,
    panel: pl.DataFrame,
    feature_set: FeatureSet,
    bench_config: BenchConfig,
    bench_results: BenchResults,
) -> None:
    out = benchmark.pedantic(
        polars_features,
        args=(panel, feature_set.config, feature_set.columns),
        rounds=bench_config.rounds,
        warmup_rounds=1,
    )
    assert out.shape == (panel.height, panel.width + len(feature_set.columns))
    benchmark.extra_info["features"] = len(feature_set.columns)
    _record(benchmark, bench_results, "polars", panel.height)


@pytest.mark.benchmark(group=GROUP)
def test_bench_floor(
    benchmark: Any,
    panel: pl.DataFrame,
    feature_set: FeatureSet,
    bench_config: BenchConfig,
    bench_results: BenchResults,
) -> None:
    n = len(feature_set.columns)
    out = benchmark.pedantic(
        floor_features, args=(panel, n), rounds=bench_config.rounds, warmup_rounds=1
    )
    assert out.shape == (panel.height, panel.width + n)
    benchmark.extra_info["features"] = n
    _record(benchmark, bench_results, "floor", panel.height)


def test_polars_reference_matches_engine(panel: pl.DataFrame, feature_set: FeatureSet) -> None:
    """Every column of the hand-tuned reference equals the engine's (same tolerance as pandas)."""
    got = run_engine(panel, feature_set.defs)
    ref = polars_features(panel, feature_set.config, feature_set.columns)
    assert got.columns == ref.columns
    assert got.select("ticker", "date").equals(ref.select("ticker", "date"))
    for name in feature_set.columns:
        ours = got[name].cast(pl.Float64).to_numpy()  # nulls -> NaN: both mean missing
        theirs = ref[name].cast(pl.Float64).to_numpy()
        missing = np.isnan(ours)
        np.testing.assert_array_equal(missing, np.isnan(theirs), err_msg=f"{name}: missing")
        assert not missing.all(), f"{name}: no values at all"
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=name)
