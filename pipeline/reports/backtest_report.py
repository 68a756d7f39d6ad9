"""The backtest report: ``report.html`` beside ``metrics.json`` in the backtest's folder.

The same walk-forward, strategy, forecast and portfolio sections as the train report, for
a registered model refitted on the current folds; pointers address ``metrics.json``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipeline.evaluation.results import BacktestReport
from pipeline.reports.forecast import forecast_section
from pipeline.reports.html import At, banner, esc, guarded, kpis, page, write_page
from pipeline.reports.panels import panel_section
from pipeline.reports.series import Evidence
from pipeline.reports.tearsheet import tearsheet_section
from pipeline.reports.walkforward import walkforward_section

log = logging.getLogger(__name__)
REPORT_FILE = "report.html"


def _figures(wf: At) -> str:
    zero, hold = wf.at("baselines", "zero_return"), wf.at("baselines", "buy_and_hold")
    return kpis(
        [
            ("pooled rmse", wf.num("rmse", spec=".6f")),
            ("zero-return rmse", zero.num("rmse", spec=".6f")),
            ("directional accuracy", wf.num("directional_accuracy", spec=".4f")),
            ("IC", wf.num("ic", spec=".4f")),
            ("Sharpe", wf.num("sharpe", spec=".2f")),
            ("Sharpe 95% CI low", wf.num("sharpe_ci", 0, spec=".2f")),
            ("Sharpe 95% CI high", wf.num("sharpe_ci", 1, spec=".2f")),
            ("deflated Sharpe", wf.num("deflated_sharpe", spec=".3f")),
            ("buy-and-hold Sharpe", hold.num("sharpe", spec=".2f")),
        ]
    )


def _document(report: BacktestReport, ev: Evidence) -> str:
    wf = At(report)
    nav = [("walkforward", "Walk-forward"), ("strategy", "Strategy"), ("forecast", "Forecast")]
    body = (
        guarded("walk-forward", lambda: walkforward_section("walkforward", wf))
        + guarded("strategy", lambda: tearsheet_section("strategy", wf, ev))
        + guarded("forecast", lambda: forecast_section("forecast", wf, ev))
    )
    if report.portfolio is not None:
        nav.append(("portfolio", "Portfolio"))
        body += guarded("portfolio", lambda: panel_section("portfolio", wf, ev))
    title = f"stockpipe backtest: {report.model_uri}"
    lines = [
        f"Version {wf.text('model_version')}, horizon {wf.num('horizon', spec='d')} day(s): "
        f"refitted on each of {len(report.folds)} folds (hash {wf.text('folds_hash')}), "
        f"MLflow run {wf.text('run_id')}.",
    ]
    foot = (
        "Every number is read from metrics.json (each value's data-json attribute is its "
        "place there); the charts draw predictions.parquet's out-of-sample rows."
    )
    return page(title, banner("ok", esc(title), lines, _figures(wf)), nav, body, foot)


def write_backtest_report(folder: Path, report: BacktestReport, ev: Evidence) -> Path:
    """Write ``folder/report.html`` for ``report`` and the rows it was computed from."""
    started = time.perf_counter()
    path = write_page(folder / REPORT_FILE, _document(report, ev))
    log.info(
        "%s: %d KB in %.2f s", path, path.stat().st_size // 1024, time.perf_counter() - started
    )
    return path
