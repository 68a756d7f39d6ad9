"""The drift detector (pipeline/monitoring/novelty.py) against plain loops, and its profile
fields (per-ticker ranges, data columns) against numpy and Polars."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from pipeline.monitoring.datacolumns import VOLUME_LEVEL, aligned, data_columns
from pipeline.monitoring.datadrift import drift_section
from pipeline.monitoring.novelty import Range, episode_start, excess, judge, run_rule
from pipeline.monitoring.profile import TICKER_MIN_ROWS, build_profile, reference
from pipeline.monitoring.recent import RecentWindow
from pipeline.settings import MonitoringConfig


def _loop_rule(flags: list[bool], k: int, n: int) -> list[bool]:
    return [sum(flags[max(0, i - n + 1) : i + 1]) >= k for i in range(len(flags))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_run_rule_equals_a_loop(seed: int) -> None:
    flags = list(np.random.default_rng(seed).random(200) < 0.3)
    for k, n in ((1, 1), (3, 5), (2, 2), (5, 10)):
        assert list(run_rule(flags, k, n)) == _loop_rule(flags, k, n)


def test_excess_is_the_distance_outside_in_range_widths() -> None:
    rng = Range(1.0, 3.0)
    got = excess([0.0, 1.0, 2.0, 3.0, 4.0, np.nan], rng)
    np.testing.assert_array_equal(got[:5], [0.5, 0.0, 0.0, 0.0, 0.5])
    assert np.isnan(got[5])
    assert Range(2.0, 2.0).width == 1.0  # a constant input: any move counts


def test_a_one_day_outlier_never_alerts_and_a_lasting_level_does() -> None:
    rng = Range(0.0, 1.0)
    kw = {"warn_margin": 0.1, "alert_margin": 0.25, "run_days": 3, "run_window": 5}
    blip = np.r_[np.full(30, 0.5), 9.0, np.full(29, 0.5)]
    assert judge(blip, rng, **kw).status == "ok"
    assert judge(blip, rng, **kw).days_beyond == 1
    level = np.r_[np.full(50, 0.5), np.full(10, 2.0)]
    verdict = judge(level, rng, **kw)
    assert verdict.status == "alert" and verdict.since == 50 and verdict.max_excess == 1.0
    mild = np.r_[np.full(50, 0.5), np.full(10, 1.2)]  # 0.2 widths out: warn, not alert
    assert judge(mild, rng, **kw).status == "warn"
    over = np.r_[np.full(50, 0.5), np.full(5, 2.0), np.full(5, 0.5)]  # back inside: cleared
    assert judge(over, rng, **kw).status == "ok"


def test_the_episode_starts_at_its_first_flag() -> None:
    flags = np.array([0, 0, 1, 0, 1, 1, 1, 1], dtype=bool)
    held = run_rule(flags, 3, 5)
    assert list(held) == [False] * 5 + [True] * 3
    assert episode_start(held, flags, 5) == 2
    assert episode_start(run_rule(flags[:5], 3, 5), flags[:5], 5) is None


def test_ranges_are_the_tail_quantiles_pooled_and_per_ticker() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1, 2000), rng.normal(10, 2, TICKER_MIN_ROWS - 1)
    values = np.r_[a, b]
    tickers = np.array(["A"] * a.size + ["B"] * b.size)
    ref = reference(values, np.r_[np.arange(a.size), np.arange(b.size)], tickers)
    assert ref is not None
    lo, hi = np.quantile(values, [0.001, 0.999], method="inverted_cdf")
    assert (ref.range_low, ref.range_high) == (lo, hi)
    own = np.quantile(a, [0.001, 0.999], method="inverted_cdf")
    assert ref.per_ticker == {"A": (own[0], own[1])}  # B has too few rows: pooled
    assert ref.range_for("A") == Range(own[0], own[1])
    assert ref.range_for("B") == ref.range_for("NEW") == Range(lo, hi)


def _bars(volume: np.ndarray, ticker: str = "A") -> pl.DataFrame:
    n = volume.size
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(n)]
    return pl.DataFrame({"ticker": [ticker] * n, "date": dates, "volume": volume})


def test_the_volume_level_is_the_log_of_a_five_day_mean() -> None:
    volume = np.random.default_rng(3).lognormal(10, 0.5, 40)
    got = data_columns(_bars(volume))[VOLUME_LEVEL]
    want = [np.log(volume[i - 4 : i + 1].mean()) if i >= 4 else np.nan for i in range(40)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert data_columns(_bars(volume).drop("volume")) == {}
    frame = pl.concat([_bars(volume, "A"), _bars(volume * 10, "B")])
    rows = frame.select("ticker", "date").reverse().head(7)
    picked = aligned(frame, rows)[VOLUME_LEVEL]  # B's last 7 rows, newest first
    want_b = [np.log(10 * volume[i - 4 : i + 1].mean()) for i in range(39, 32, -1)]
    np.testing.assert_allclose(picked, want_b, rtol=1e-12)


def test_a_panel_names_the_ticker_whose_inputs_moved() -> None:
    rng = np.random.default_rng(11)
    n, tickers = 1500, ["A", "B", "C"]
    train = np.concatenate([rng.normal(1, 0.1, n) for _ in tickers])
    names = np.repeat(tickers, n)
    dates = np.tile(np.arange(n), len(tickers))
    profile = build_profile(train[:, None], ("vol",), dates, tickers=names)
    window = np.concatenate(
        [rng.normal(1, 0.1, 60), rng.normal(3, 0.1, 60), rng.normal(1, 0.1, 60)]
    )
    recent = RecentWindow(60, np.tile(np.arange(60), 3), np.repeat(tickers, 60), ("vol",),
                          window[:, None], np.zeros(180))  # fmt: skip
    section = drift_section(profile, recent, MonitoringConfig())
    assert section.status == "alert" and section.tickers == {"A": "ok", "B": "alert", "C": "ok"}
    assert section.features["vol"].tickers == ["B"] and section.features["vol"].since == "0"
    assert section.alerts and section.alerts[0].startswith("vol: alert in B, beyond")
