"""What the report tests share (tests/integration/test_html_reports.py, without a browser, and
tests/e2e/test_reports_browser.py, in Chromium): how a page must write a JSON value, the check
of a page's numbers against its JSON file, and a panel's backtest page drawn from a real
walk-forward report."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.domain import Fold
from pipeline.evaluation.honesty import TrialSet
from pipeline.evaluation.interval_report import IntervalSetup
from pipeline.evaluation.report import OutOfSample, walk_forward_report
from pipeline.evaluation.results import BacktestReport
from pipeline.reports.backtest_report import write_backtest_report
from pipeline.reports.series import Evidence
from pipeline.settings import PortfolioConfig, StrategyConfig

TICKERS = ("AAA", "BBB", "CCC", "DDD")
FOLDS, TEST_DAYS = 3, 150
PANEL_CHARTS = {
    "walkforward-folds", "walkforward-sharpe", "strategy-equity", "strategy-monthly",
    "strategy-rolling", "strategy-costs", "forecast-scatter", "forecast-coverage",
    "portfolio-quantiles", "portfolio-rankic", "portfolio-books",
}  # fmt: skip


def shown(value: Any, spec: str) -> str:
    """How a page must write a JSON value (null: n/a; "%.1f": a share as a percentage)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if spec.startswith("%"):
        return format(value * 100, spec[1:]) + "%"
    return format(value, spec)


def resolve(doc: Any, pointer: str) -> Any:
    """RFC 6901: ``/folds/2/rmse`` in ``doc``."""
    for raw in pointer.split("/")[1:]:
        key = raw.replace("~1", "/").replace("~0", "~")
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]
    return doc


def check_numbers(numbers: list[tuple[str, str, str, str]], doc: Any) -> set[str]:
    """Each (pointer, data-value, format, text) a page holds against ``doc``, its JSON file:
    the exact value, and the text the page shows for it. Returns the pointers."""
    for pointer, value, spec, text in numbers:
        want = resolve(doc, pointer)
        exact = value if isinstance(want, str) else json.loads(value)
        assert exact == want, f"{pointer}: data-value {value} but the JSON holds {want!r}"
        assert text == shown(want, spec), f"{pointer}: the page shows {text!r} for {want!r}"
    return {p for p, _, _, _ in numbers}


def panel_rows(seed: int = 7) -> tuple[OutOfSample, list[Fold]]:
    """Test rows of 3 folds of 150 business days over 4 tickers; predictions carry a little
    of the realised return (a signal), so every metric is defined."""
    rng = np.random.default_rng(seed)
    days = np.busday_offset("2021-01-04", np.arange(FOLDS * TEST_DAYS), roll="forward")
    n = days.size * len(TICKERS)
    y = rng.normal(0.0, 0.02, n)
    iso = [dt.date.fromisoformat(str(d)) for d in days]
    folds = [
        Fold(k, dt.date(2015, 1, 1), iso[k * TEST_DAYS] - dt.timedelta(days=2),
             iso[k * TEST_DAYS], iso[(k + 1) * TEST_DAYS - 1], 1500, TEST_DAYS * len(TICKERS))
        for k in range(FOLDS)
    ]  # fmt: skip
    oos = OutOfSample(
        fold=np.repeat(np.arange(days.size) // TEST_DAYS, len(TICKERS)),
        dates=np.repeat(days, len(TICKERS)),
        tickers=np.tile(np.array(TICKERS), days.size),
        y_true=y,
        y_pred=0.05 * y + rng.normal(0.0, 0.004, n),
        last_return=rng.normal(0.0, 0.02, n),
    )
    return oos, folds


def draw_panel(folder: Path) -> tuple[BacktestReport, Evidence, Path, Path]:
    """A panel's backtest page (intervals and the portfolio on) from a real walk-forward
    report, with the metrics.json it is checked against: (report, evidence, page, json)."""
    oos, folds = panel_rows()
    strategy = StrategyConfig(bootstrap_samples=200)
    setup = IntervalSetup((0.8, 0.95), "vol", np.full(oos.y_true.size, 0.02))
    wf = walk_forward_report(
        oos, folds, strategy, 1, TrialSet(12, 4e-4), seed=1,
        portfolio=PortfolioConfig(top_k=1, bottom_k=1), intervals=setup,
    )  # fmt: skip
    report = BacktestReport(
        **dict(wf), model_uri="models:/M/3", model_version="3", horizon=1,
        folds_hash="f0", run_id="r1",
    )  # fmt: skip
    ev = Evidence(oos, strategy, 1, setup)
    folder.mkdir(parents=True, exist_ok=True)
    doc = folder / "metrics.json"
    doc.write_text(json.dumps(report.model_dump(mode="json"), allow_nan=False))
    return report, ev, write_backtest_report(folder, report, ev), doc
