"""Drift and live-performance statistics of `stockpipe monitor`, checked against oracles written
here by hand (plain loops over values and bins, the binomial distribution) and against scipy,
never against the module's own output."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats

from pipeline.evaluation.report import OutOfSample
from pipeline.monitoring.datadrift import drift_section, input_drift, thresholds
from pipeline.monitoring.drift import (
    EPS,
    Bins,
    cumulative_counts,
    ks_test,
    psi,
    quantile_bins,
    window_psis,
)
from pipeline.monitoring.performance import bootstrap_band, rolling_view
from pipeline.monitoring.profile import SAMPLE_SIZE, ReferenceProfile, build_profile, reference
from pipeline.monitoring.recent import RecentWindow
from pipeline.monitoring.report import level, shortfall, worst
from pipeline.settings import MonitoringConfig

RNG_SEED = 7


def _bin_by_hand(bins: Bins, x: float) -> int:
    """Below low -> 0; (-inf.. first inner] within range -> 1; ...; above high -> last."""
    if x < bins.low:
        return 0
    if x > bins.high:
        return len(bins.inner) + 2
    for k, edge in enumerate(bins.inner):
        if x <= edge:
            return k + 1
    return len(bins.inner) + 1


def _psi_by_hand(recent: list[float], reference: list[float], bins: Bins) -> float:
    n_bins = len(bins.inner) + 3
    a, e = [0.0] * n_bins, [0.0] * n_bins
    for x in recent:
        a[_bin_by_hand(bins, x)] += 1 / len(recent)
    for x in reference:
        e[_bin_by_hand(bins, x)] += 1 / len(reference)
    total = 0.0
    for ai, ei in zip(a, e, strict=True):
        ai, ei = max(ai, EPS), max(ei, EPS)
        total += (ai - ei) * math.log(ai / ei)
    return total


def test_bins_are_the_deciles_plus_two_out_of_range_bins() -> None:
    values = np.arange(1.0, 101.0)  # 1..100: empirical deciles 10, 20, ..., 90
    bins = quantile_bins(values)
    assert bins is not None and (bins.low, bins.high) == (1.0, 100.0)
    assert bins.inner == tuple(float(v) for v in range(10, 100, 10))
    probe = np.array([-5.0, 1.0, 10.0, 10.5, 99.0, 100.0, 100.5, np.nan])
    assert bins.index(probe).tolist() == [_bin_by_hand(bins, x) for x in probe[:-1]]
    assert bins.index(probe).tolist() == [0, 1, 1, 2, 10, 10, 11]  # NaN left out
    assert bins.shares(values).tolist() == pytest.approx([0.0] + [0.1] * 10 + [0.0])


def test_few_distinct_values_get_few_bins() -> None:
    days = np.tile([0.0, 1.0, 2.0, 3.0, 4.0], 40)  # a day of the week
    bins = quantile_bins(days)
    assert bins is not None and bins.inner == (0.0, 1.0, 2.0, 3.0)
    assert bins.shares(days).tolist() == pytest.approx([0, 0.2, 0.2, 0.2, 0.2, 0.2, 0])
    assert quantile_bins([np.nan, np.nan]) is None


def test_psi_matches_a_loop_by_hand() -> None:
    rng = np.random.default_rng(RNG_SEED)
    ref = rng.normal(0, 1, 2000)
    bins = quantile_bins(ref)
    assert bins is not None
    for recent in (rng.normal(0, 1, 60), rng.normal(0.5, 3, 60), rng.normal(10, 1, 60)):
        got = psi(bins.shares(recent), bins.shares(ref))
        assert got == pytest.approx(_psi_by_hand(list(recent), list(ref), bins), rel=1e-12)
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_window_psis_match_each_window_by_hand() -> None:
    rng = np.random.default_rng(RNG_SEED)
    values = rng.normal(0, 1, 120)
    values[[3, 50]] = np.nan  # undefined values are left out of their window
    dates = np.repeat(np.arange(60), 2)  # a two-ticker panel: two rows per date
    bins = quantile_bins(values)
    assert bins is not None
    expected = bins.shares(values)
    cumulative = cumulative_counts(bins, values, dates)
    got = window_psis(cumulative, expected, window=10)
    assert got.size == 60 - 10 + 1
    assert window_psis(cumulative, expected, window=10, stride=3) == pytest.approx(got[::3])
    kept = values[np.isfinite(values)]
    for start in (0, 17, 50):
        rows = values[(dates >= start) & (dates < start + 10)]
        rows = rows[np.isfinite(rows)]
        assert got[start] == pytest.approx(_psi_by_hand(list(rows), list(kept), bins), rel=1e-12)


def test_ks_statistic_by_hand_and_p_value_from_scipy() -> None:
    rng = np.random.default_rng(RNG_SEED)
    recent, ref = rng.normal(0.3, 1, 60), rng.normal(0, 1, 500)
    statistic, pvalue = ks_test(np.append(recent, np.nan), ref)
    grid = np.concatenate([recent, ref])
    by_hand = max(abs(np.mean(recent <= x) - np.mean(ref <= x)) for x in grid)
    assert statistic == pytest.approx(by_hand, abs=1e-12)
    assert pvalue == pytest.approx(stats.ks_2samp(recent, ref).pvalue, rel=1e-12)
    assert all(math.isnan(v) for v in ks_test([], ref))


def test_profile_round_trips_and_keeps_a_small_deterministic_sample() -> None:
    rng = np.random.default_rng(RNG_SEED)
    n = 3000
    X = np.column_stack([rng.normal(0, 1, n), np.full(n, np.nan), np.arange(n) % 5])
    dates = np.arange(n)
    profile = build_profile(X, ("a", "never", "dow"), dates, rng.normal(0, 0.01, 500), dates[:500])
    again = ReferenceProfile.model_validate_json(profile.model_dump_json())
    assert again == profile and again.features["never"] is None
    a = again.features["a"]
    assert a is not None and a.n == n and len(a.sample) == SAMPLE_SIZE
    assert a.sample[0] == pytest.approx(X[0, 0], rel=1e-5)  # the first row, then evenly spaced
    assert a.sample[-1] == pytest.approx(X[-1, 0], rel=1e-5)
    assert [w.window for w in a.null] == [5, 10, 20, 40, 60, 120, 250]
    assert all(w.q50 <= w.q95 <= w.q99 <= w.max for w in a.null)
    assert again.predictions is not None and again.predictions.n == 500
    assert len(json.dumps(json.loads(profile.model_dump_json()))) < 200_000  # small
    assert build_profile(X, ("a", "never", "dow"), dates) == profile.model_copy(
        update={"predictions": None}
    )


def test_calibration_uses_the_nearest_window_not_longer() -> None:
    ref = reference(np.random.default_rng(1).normal(0, 1, 1000), np.arange(1000))
    assert ref is not None
    cfg = MonitoringConfig()
    for window, used in ((60, 60), (90, 60), (7, 5), (3, 5), (1000, 250)):
        null = ref.null_for(window)
        assert null is not None and null.window == used
        warn, alert, got = thresholds(ref, window, cfg)
        assert got == used and (warn, alert) == (max(0.1, null.max), max(0.25, 2 * null.max))
    assert thresholds(ref, 60, MonitoringConfig(calibrated=False)) == (0.1, 0.25, None)


def _window(values: np.ndarray) -> RecentWindow:
    n = values.size
    return RecentWindow(n, np.arange(n), np.array(["A"] * n), ("f",), values[:, None], values)


def test_a_tripled_level_alerts_while_the_same_distribution_is_ok() -> None:
    """A volatility-like input (positive level with noise) tripled: both detectors alert."""
    rng = np.random.default_rng(RNG_SEED)
    ref = reference(rng.normal(1, 0.1, 3000), np.arange(3000), np.array(["A"] * 3000))
    for detector in ("novelty", "psi"):
        cfg = MonitoringConfig(detector=detector)
        same = input_drift(ref, _window(v := rng.normal(1, 0.1, 60)), v, cfg, EPS)[0]
        wide = input_drift(ref, _window(v := rng.normal(3, 0.3, 60)), v, cfg, EPS)[0]
        assert same.status == "ok" and wide.status == "alert", detector
        assert same.detector == wide.detector == detector
        assert wide.psi is not None and same.psi is not None and wide.psi > same.psi
        nan = np.full(60, np.nan)
        missing = input_drift(ref, _window(nan), nan, cfg, EPS)[0]
        assert missing.status == "unavailable" and missing.n == 0


def test_a_version_without_profile_is_unavailable_not_an_error() -> None:
    recent = RecentWindow(60, np.arange(60), np.array(["A"] * 60), ("f",), np.ones((60, 1)),
                          np.zeros(60))  # fmt: skip
    section = drift_section(None, recent, MonitoringConfig(), "no profile for v3")
    assert section.status == "unavailable" and section.reason == "no profile for v3"


def test_statuses_and_their_order() -> None:
    assert [level(v, 0.1, 0.25) for v in (0.05, 0.1, 0.2, 0.3)] == ["ok", "ok", "warn", "alert"]
    assert [shortfall(v, 0.5, 0.4) for v in (0.6, 0.45, 0.3)] == ["ok", "warn", "alert"]
    assert worst(["ok", "insufficient"]) == "insufficient"
    assert worst(["unavailable", "insufficient", "ok"]) == "unavailable"
    assert worst(["warn", "unavailable"]) == "warn"
    assert worst(["alert", "warn", "ok"]) == "alert"
    assert worst([]) == "ok"


def _oos(y_true: np.ndarray, y_pred: np.ndarray, tickers: int = 1) -> OutOfSample:
    n = y_true.size
    dates = np.repeat(np.arange(n // tickers), tickers)
    names = np.tile(np.array([f"T{k}" for k in range(tickers)]), n // tickers)
    zeros = np.zeros(n)
    return OutOfSample(zeros.astype(int), dates, names, y_true, y_pred, zeros)


def test_the_band_is_the_binomial_band_of_directional_accuracy() -> None:
    """i.i.d. rows whose signs match with p = 0.6: the bootstrap band of DA over n dates is
    the binomial one, p -/+ z * sqrt(p (1 - p) / n), to within a sampling tolerance."""
    rng = np.random.default_rng(RNG_SEED)
    rows, p, n = 4000, 0.6, 250
    y = rng.normal(0, 0.01, rows)
    pred = np.where(rng.random(rows) < p, y, -y)
    cfg = MonitoringConfig(band_samples=2000)
    band = bootstrap_band(_oos(y, pred), n, cfg, seed=1)["directional_accuracy"]
    sd = math.sqrt(p * (1 - p) / n)
    z = NormalDist().inv_cdf
    assert band.median == pytest.approx(p, abs=0.01)
    assert band.warn_below == pytest.approx(p + z(0.05) * sd, abs=0.012)
    assert band.alert_below == pytest.approx(p + z(0.01) * sd, abs=0.015)
    assert band.high == pytest.approx(p + z(0.95) * sd, abs=0.012)


def test_the_band_of_a_panel_resamples_whole_dates() -> None:
    rng = np.random.default_rng(RNG_SEED)
    y = rng.normal(0, 0.01, 3 * 400)
    band = bootstrap_band(_oos(y, y, tickers=3), 50, MonitoringConfig(band_samples=200), 1)
    assert band["ic"].median == pytest.approx(1.0) and band["ic"].alert_below == pytest.approx(1.0)
    assert band["directional_accuracy"].warn_below == pytest.approx(1.0)


def test_rolling_view_by_hand() -> None:
    rng = np.random.default_rng(RNG_SEED)
    y, pred = rng.normal(0, 0.01, 30), rng.normal(0, 0.01, 30)
    view = rolling_view(_oos(y, pred), window=20)
    assert len(view.dates) == 11 and view.dates[0] == "19"
    for k in (0, 10):
        t, p = y[k : k + 20], pred[k : k + 20]
        assert view.directional_accuracy[k] == pytest.approx(np.mean((t > 0) == (p > 0)))
        assert view.ic[k] == pytest.approx(np.corrcoef(t, p)[0, 1], rel=1e-12)
