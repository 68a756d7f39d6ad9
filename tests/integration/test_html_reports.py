"""report.html of a walk-forward report (issue 27), without a browser: a real report (the
evaluation package's own walk_forward_report on a 4-ticker panel with a planted signal,
intervals on) drawn by the backtest page.

Every number on the page carries its JSON pointer and value and must equal metrics.json's;
every chart is an inline <svg>; nothing is fetched; and the charts' series agree with the
report's numbers (the equity curve compounds to total_return, the portfolio's books give its
Sharpe, the per-date rank ICs average to its rank IC, per-fold coverage pools to coverage).
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure
from report_checks import PANEL_CHARTS, check_numbers, draw_panel

from pipeline.evaluation.results import BacktestReport
from pipeline.evaluation.strategy import strategy_metrics
from pipeline.reports.charts import figure, new
from pipeline.reports.html import At, guarded
from pipeline.reports.series import (
    Evidence,
    books,
    coverage_by_fold,
    equity,
    growth,
    rank_ics,
    rolling_sharpe,
)

HEADLINE = {
    "/rmse", "/sharpe", "/sharpe_ci/0", "/sharpe_ci/1", "/deflated_sharpe", "/n_trials",
    "/trial_sharpe_variance", "/baselines/zero_return/rmse", "/baselines/buy_and_hold/sharpe",
    "/folds/2/rmse", "/intervals/80/coverage", "/intervals_split/95/coverage",
    "/portfolio/rank_ic", "/portfolio/sharpe", "/model_version",
}  # fmt: skip


class Page(HTMLParser):
    """The numbers (data-json spans), the charts (figure.chart) and anything fetched."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: list[tuple[str, str, str, str]] = []
        self.charts: dict[str, int] = {}  # name -> <svg> elements inside
        self.failed: list[str] = []
        self.fetched: list[str] = []
        self.scripts = 0
        self._span: dict[str, str] | None = None
        self._figure: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "span" and "data-json" in a:
            self._span = {**a, "text": ""}
        elif tag == "figure" and "chart" in a.get("class", ""):
            self._figure = a["data-chart"]
            self.charts[self._figure] = 0
        if "failed" in a.get("class", "").split():
            self.failed.append(a.get("data-chart", tag))
        elif tag == "svg" and self._figure is not None:
            self.charts[self._figure] += 1
        self.scripts += tag == "script"
        self.fetched += [a[k] for k in ("src", "href") if k in a and not a[k].startswith("#")]

    def handle_data(self, data: str) -> None:
        if self._span is not None:
            self._span["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._span is not None:
            s = self._span
            self.numbers.append((s["data-json"], s["data-value"], s["data-fmt"], s["text"]))
            self._span = None
        elif tag == "figure":
            self._figure = None


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The panel's report, its evidence, its page parsed and its metrics.json."""
    report, ev, path, doc = draw_panel(tmp_path_factory.mktemp("report"))
    parsed = Page()
    parsed.feed(path.read_text())
    return {"report": report, "ev": ev, "path": path, "page": parsed, "doc": doc}


def test_every_number_on_the_page_is_the_jsons(drawn: dict[str, Any]) -> None:
    pointers = check_numbers(drawn["page"].numbers, json.loads(drawn["doc"].read_text()))
    assert pointers >= HEADLINE
    assert len(pointers) > 100  # folds, baselines, strategy, intervals, portfolio


def test_every_chart_is_inline_svg_and_nothing_is_fetched(drawn: dict[str, Any]) -> None:
    page: Page = drawn["page"]
    assert page.failed == []
    assert set(page.charts) == PANEL_CHARTS
    assert all(count == 1 for count in page.charts.values()), page.charts
    assert page.scripts == 0 and page.fetched == []
    assert 50_000 < drawn["path"].stat().st_size < 1_500_000


def test_chart_series_agree_with_the_report(drawn: dict[str, Any]) -> None:
    report: BacktestReport = drawn["report"]
    ev: Evidence = drawn["ev"]
    eq = equity(ev)
    assert growth(eq.net)[-1] - 1 == pytest.approx(report.total_return, rel=1e-12)
    hold = report.baselines.buy_and_hold.total_return
    assert growth(eq.hold)[-1] - 1 == pytest.approx(hold, rel=1e-12)
    window = eq.net[-126:]
    assert rolling_sharpe(ev, eq.net)[-1] == strategy_metrics(window, 252)["sharpe"]
    block = report.portfolio
    assert block is not None
    assert strategy_metrics(books(ev, block).net, 252)["sharpe"] == pytest.approx(block.sharpe)
    _, ics = rank_ics(ev)
    assert float(np.nanmean(ics)) == pytest.approx(block.rank_ic, rel=1e-12)
    assert report.intervals is not None
    for key, score in report.intervals.items():
        _, per_fold = coverage_by_fold(ev, int(key) / 100)  # equal rows per fold: mean = pooled
        assert float(np.mean(per_fold)) == pytest.approx(score.coverage, rel=1e-12)


def test_a_view_that_fails_to_draw_is_a_note_not_a_failed_job() -> None:
    def broken() -> Figure:
        new(4, 3).add_subplot().plot([1, 2])
        raise ZeroDivisionError("no rows to draw")

    html = figure("broken", "never drawn", broken)
    assert 'class="chart failed"' in html and "ZeroDivisionError" in html
    assert "<svg" not in html
    section = guarded("the strategy", lambda: str(1 / 0))
    assert section == (
        '<p class="note failed">the strategy not drawn: ZeroDivisionError: division by zero</p>'
    )


def test_pointers_escape_slashes_and_keep_every_digit() -> None:
    at = At({"latency": {"/predict": {"p50_ms": 1 / 3}}})
    span = at.at("latency", "/predict").num("p50_ms", spec=".1f")
    assert 'data-json="/latency/~1predict/p50_ms"' in span
    assert f'data-value="{1 / 3!r}"' in span and ">0.3<" in span
