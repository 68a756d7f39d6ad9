"""Prediction intervals through the real walk-forward report (and its out-of-sample scale).

The issue's statistical checks, run through ``walk_forward_report`` as `train` and `backtest`
call it: on a random walk with constant volatility both methods cover within 4 points of
nominal; when volatility triples halfway the adaptive method stays within 6 points while the
plain one misses. Both are reported side by side (``intervals`` and ``intervals_split``).
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from support import sample_prices

from pipeline.domain import Fold
from pipeline.evaluation.honesty import TrialSet
from pipeline.evaluation.intervals import calibrate
from pipeline.evaluation.report import IntervalSetup, OutOfSample, flat_metrics, walk_forward_report
from pipeline.evaluation.results import WalkForwardReport
from pipeline.features.columns import feature_columns
from pipeline.features.spec import build_feature_defs
from pipeline.settings import IntervalsConfig, ModelConfig, StrategyConfig
from pipeline.training.dataset import build_training_set
from pipeline.training.intervals import calibration_tags, interval_setup, oos_scale

TRAIN_DAYS, FOLD_DAYS = 500, 250
DAY0 = dt.date(2000, 1, 3)
LEVELS = (0.8, 0.95)
SCALE = "rolling_std_logret_1_20"


def _rolling_std(r: np.ndarray, window: int) -> np.ndarray:
    """Causal: the std of the ``window`` returns up to and including t (a plain loop)."""
    out = np.full(r.size, np.nan)
    for t in range(window - 1, r.size):
        out[t] = np.std(r[t - window + 1 : t + 1], ddof=1)
    return out


def _walk(vol: np.ndarray, seed: int) -> tuple[OutOfSample, list[Fold], np.ndarray]:
    """Daily log returns with the given volatility path, as a model's out-of-sample rows:
    target = next day's return, forecast zero, scale = the causal 20-day std; five 250-day
    test folds after 500 training days."""
    r = np.random.default_rng(seed).normal(0.0, 1.0, vol.size) * vol
    y, scale = r[1:], _rolling_std(r, 20)[:-1]
    n_folds = (y.size - TRAIN_DAYS) // FOLD_DAYS
    rows = np.arange(TRAIN_DAYS, TRAIN_DAYS + n_folds * FOLD_DAYS)
    dates = np.array([DAY0 + dt.timedelta(days=int(i)) for i in rows], dtype="datetime64[D]")
    oos = OutOfSample(
        fold=(rows - TRAIN_DAYS) // FOLD_DAYS,
        dates=dates,
        tickers=np.full(rows.size, "RW"),
        y_true=y[rows],
        y_pred=np.zeros(rows.size),
        last_return=np.zeros(rows.size),
    )
    folds = []
    for k in range(n_folds):
        test = dates[oos.fold == k].astype(dt.date)
        train_end = test[0] - dt.timedelta(days=2)
        folds.append(Fold(k, DAY0, train_end, test[0], test[-1], 400, FOLD_DAYS))
    return oos, folds, scale[rows]


def _report(oos: OutOfSample, folds: list[Fold], setup: IntervalSetup | None) -> WalkForwardReport:
    cfg = StrategyConfig(bootstrap_samples=100)
    return walk_forward_report(oos, folds, cfg, 1, TrialSet(1, 0.0), intervals=setup)


def _coverage(report: WalkForwardReport, split: bool = False) -> dict[float, float]:
    levels = report.intervals_split if split else report.intervals
    assert levels is not None
    out = {}
    for level in LEVELS:
        score = levels[str(round(level * 100))]
        assert score.coverage is not None
        out[level] = score.coverage
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_constant_volatility_covers_nominal_within_4_points(seed: int) -> None:
    oos, folds, scale = _walk(np.full(1751, 0.02), seed)
    report = _report(oos, folds, IntervalSetup(LEVELS, SCALE, scale))
    assert report.intervals_method == "scaled" and report.intervals_scale_feature == SCALE
    for method in (_coverage(report), _coverage(report, split=True)):
        for level, coverage in method.items():
            assert abs(coverage - level) <= 0.04, (level, coverage)
    assert report.intervals is not None
    assert report.intervals["80"].n == 4 * FOLD_DAYS  # every fold but the first is scored


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tripling_volatility_breaks_split_but_not_the_adaptive_method(seed: int) -> None:
    vol = np.where(np.arange(2001) < 1125, 0.01, 0.03)  # triples in the middle of fold 2
    oos, folds, scale = _walk(vol, seed)
    report = _report(oos, folds, IntervalSetup(LEVELS, SCALE, scale))
    adaptive, plain = _coverage(report), _coverage(report, split=True)
    for level in LEVELS:
        assert abs(adaptive[level] - level) <= 0.06, (level, adaptive)
        assert plain[level] < level - 0.10, (level, plain)  # calibrated on calm folds
    # Winkler: the plain method's misses cost more than the adaptive one's wider bands
    assert report.intervals is not None and report.intervals_split is not None
    winkler = [levels["95"].winkler for levels in (report.intervals, report.intervals_split)]
    assert winkler[0] is not None and winkler[1] is not None and winkler[0] < winkler[1]


def test_report_fields_json_and_mlflow_names() -> None:
    oos, folds, scale = _walk(np.full(1751, 0.02), 4)
    report = _report(oos, folds, IntervalSetup(LEVELS, SCALE, scale))
    assert report.intervals is not None and report.intervals_split is not None
    q = calibrate(oos.y_true, oos.y_pred, LEVELS, scale)  # over every fold: what is carried
    assert {k: s.q for k, s in report.intervals.items()} == q
    doc = json.loads(json.dumps(report.model_dump(mode="json"), allow_nan=False))
    assert set(doc["intervals"]) == set(doc["intervals_split"]) == {"80", "95"}
    assert set(doc["intervals"]["80"]) == {"n", "coverage", "mean_width", "winkler", "q"}
    assert WalkForwardReport.model_validate(doc) == report  # metrics.json reads back
    flat = flat_metrics(report, "oos_")
    assert flat["oos_interval_95_coverage"] == report.intervals["95"].coverage
    assert flat["oos_interval_split_80_winkler"] == report.intervals_split["80"].winkler
    tag = json.loads(calibration_tags(report)["intervals"])
    assert tag == {"method": "scaled", "scale_feature": SCALE, "quantiles": q}


def test_split_alone_and_no_intervals() -> None:
    oos, folds, _ = _walk(np.full(1751, 0.02), 5)
    split = _report(oos, folds, IntervalSetup(LEVELS))
    assert split.intervals_method == "split" and split.intervals_split is None
    assert split.intervals is not None and split.intervals_scale_feature is None
    for off in (None, IntervalSetup(())):
        none = _report(oos, folds, off)
        assert none.intervals is None and none.intervals_method is None
        assert calibration_tags(none) == {}
        assert not any("interval" in k for k in flat_metrics(none))
    with pytest.raises(ValueError, match="scale"):
        _report(oos, folds, IntervalSetup(LEVELS, SCALE, np.ones(3)))


def test_the_oos_scale_is_the_models_feature_on_each_test_row() -> None:
    """Aligned with ``out_of_sample``: the value on the row of each out-of-sample prediction."""
    model = ModelConfig(intervals=IntervalsConfig(scale_feature=SCALE))
    columns = feature_columns(model)
    nvda = sample_prices("NVDA")
    data = build_training_set(nvda.lazy(), build_feature_defs(model.features), columns, 1)
    dates = data.dates.to_list()
    folds = [
        Fold(k, dates[0], dates[-700 + 200 * k - 2], dates[-700 + 200 * k],
             dates[-700 + 200 * k + 199], 0, 200)
        for k in range(3)
    ]  # fmt: skip
    oos = data.out_of_sample(folds, [np.zeros(200)] * 3)
    scale = oos_scale(data, folds, SCALE)
    closes = nvda["close"].to_numpy()
    row = {d: i for i, d in enumerate(nvda["date"].to_list())}  # the sample is sorted by date
    for i in (0, 199, 200, 599):
        t = row[np.datetime64(oos.dates[i], "D").astype(dt.date)]
        expected = np.std(np.diff(np.log(closes[t - 20 : t + 1])), ddof=1)
        assert scale[i] == pytest.approx(expected, rel=1e-9)
    setup = interval_setup(model.intervals, data, folds)
    assert setup is not None and setup.scale is not None
    np.testing.assert_array_equal(setup.scale, scale)
    assert interval_setup(IntervalsConfig(levels=()), data, folds) is None
