"""The train report: ``report.html`` next to the summary and on the job's MLflow run.

Each horizon's sections are drawn as soon as its job ends (while its competition and
out-of-sample rows are in memory); the page is written once the summary is whole. Pointers
in the page address the summary JSON (``/backtest/rmse``; ``/by_horizon/5/backtest/rmse`` with
several horizons).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.reports.competition import competition_section, trace
from pipeline.reports.forecast import forecast_section
from pipeline.reports.html import At, banner, esc, guarded, kpis, page, write_page
from pipeline.reports.panels import panel_section
from pipeline.reports.series import Evidence
from pipeline.reports.tearsheet import tearsheet_section
from pipeline.reports.walkforward import walkforward_section
from pipeline.training.intervals import interval_setup

if TYPE_CHECKING:
    from pipeline.domain import Run
    from pipeline.settings import StrategyConfig
    from pipeline.training.competition import CompetitionResult
    from pipeline.training.plan import TrainingPlan
    from pipeline.training.summary import TrainSummary

log = logging.getLogger(__name__)
REPORT_FILE = "report.html"  # beside the summary, and at the root of the run's artifacts
SECTIONS = (
    ("competition", "Competition"),
    ("walkforward", "Walk-forward"),
    ("strategy", "Strategy"),
    ("forecast", "Forecast"),
    ("portfolio", "Portfolio"),
)


def evidence(plan: TrainingPlan, comp: CompetitionResult, strategy: StrategyConfig) -> Evidence:
    """The winner's out-of-sample rows, as the job's walk-forward report scored them."""
    best, data, folds = comp.best, plan.data, plan.folds
    return Evidence(
        oos=data.out_of_sample(folds, best.evaluation.predictions),
        strategy=strategy,
        horizon=plan.horizon,
        intervals=interval_setup(comp.intervals, data, folds),
        selected=best.evaluation.selected,
        columns=data.columns,
    )


def horizon_sections(summary: At, ev: Evidence, comp: CompetitionResult) -> str:
    """Every section of one horizon's summary (at its pointer) and its evidence; a section
    that fails to draw is a note, the others stand."""
    a, wf = f"h{ev.horizon}", summary.at("backtest")
    parts = [
        guarded(
            "competition", lambda: competition_section(f"{a}-competition", summary, trace(comp))
        ),
        guarded(
            "walk-forward",
            lambda: walkforward_section(f"{a}-walkforward", wf, summary.at("metrics")),
        ),
        guarded("strategy", lambda: tearsheet_section(f"{a}-strategy", wf, ev)),
        guarded("forecast", lambda: forecast_section(f"{a}-forecast", wf, ev)),
    ]
    if wf.obj.portfolio is not None:
        parts.append(guarded("portfolio", lambda: panel_section(f"{a}-portfolio", wf, ev)))
    return "".join(parts)


def _headline(at: At) -> str:
    """One horizon's outcome in a line: the version and alias, and the gate's reason."""
    s: TrainSummary = at.obj
    ch, champion = s.champion, at.at("champion")
    who = (
        f"{esc(ch.registered_model)} v{champion.text('version')} @{esc(ch.alias)}"
        if ch.version is not None
        else f"{esc(ch.candidate)} (not registered)"
    )
    return f"horizon {s.horizon}: {who}: {champion.text('reason')}"


def _figures(at: At) -> str:
    wf, zero = at.at("backtest"), at.at("baselines", "zero_return")
    metric = at.obj.champion.primary_metric
    return kpis(
        [
            ("winner", at.at("champion").text("candidate")),
            (f"mean fold {metric}", at.num("champion", "primary_value", spec=".6g")),
            ("pooled rmse", wf.num("rmse", spec=".6f")),
            ("zero-return rmse", zero.num("rmse", spec=".6f")),
            ("directional accuracy", wf.num("directional_accuracy", spec=".4f")),
            ("IC", wf.num("ic", spec=".4f")),
            ("Sharpe", wf.num("sharpe", spec=".2f")),
            ("deflated Sharpe", wf.num("deflated_sharpe", spec=".3f")),
            ("buy-and-hold Sharpe", wf.num("baselines", "buy_and_hold", "sharpe", spec=".2f")),
        ]
    )


def _data_line(at: At) -> str:
    s: TrainSummary = at.obj
    d = at.at("data")
    return (
        f"Trained on {esc(', '.join(s.data.tickers))} from {d.text('first_date')} to "
        f"{d.text('last_date')} ({d.num('training_rows', spec='d')} training rows), "
        f"{at.num('folds_layout', 'n_folds', spec='d')} folds, study {esc(s.study_name)}."
    )


def _status(s: TrainSummary) -> str:
    """The banner's colour: green promoted, amber challenger, grey not registered."""
    if s.champion.version is None:
        return "unavailable"
    return "promoted" if s.champion.promoted else "challenger"


@dataclass(frozen=True)
class _Drawn:
    """One horizon's summary (at its pointer) and its drawn sections."""

    at: At
    body: str

    @property
    def horizon(self) -> int:
        return int(self.at.obj.horizon)

    def nav(self, prefix: str) -> list[tuple[str, str]]:
        has_portfolio = self.at.obj.backtest.portfolio is not None
        return [
            (f"h{self.horizon}-{anchor}", prefix + title)
            for anchor, title in SECTIONS
            if anchor != "portfolio" or has_portfolio
        ]


def _document(drawn: list[_Drawn]) -> str:
    """The page of one horizon (a headline and its figures on top) or of several (a
    headline each, then each horizon's sections under its own heading)."""
    foot = (
        "Every number is read from the train summary (train_summary.json; each value's "
        "data-json attribute is its place there); the charts draw the out-of-sample rows."
    )
    if len(drawn) == 1:
        (one,) = drawn
        s: TrainSummary = one.at.obj
        title = f"stockpipe train: {s.champion.registered_model}, horizon {s.horizon}"
        head = banner(
            _status(s), esc(title), [_headline(one.at), _data_line(one.at)], _figures(one.at)
        )
        return page(title, head, one.nav(""), one.body, foot)
    title = f"stockpipe train: {len(drawn)} horizons"
    head = banner("ok", esc(title), [_headline(d.at) for d in drawn] + [_data_line(drawn[0].at)])
    nav = [item for d in drawn for item in d.nav(f"h{d.horizon} ")]
    body = "".join(f'<h2 class="horizon">Horizon {d.horizon}</h2>{d.body}' for d in drawn)
    return page(title, head, nav, body, foot)


class TrainReport:
    """The page of one training job, drawn horizon by horizon."""

    def __init__(self) -> None:
        self._drawn: dict[int, _Drawn] = {}
        self.seconds = 0.0  # spent drawing and writing, for the log

    def add(
        self,
        run: Run,
        summary: TrainSummary,
        plan: TrainingPlan,
        comp: CompetitionResult,
        strategy: StrategyConfig,
        several: bool,
    ) -> None:
        """Draw a finished horizon's sections; with several horizons, also log a page of its
        own on its run (``run``), where its registered version's description points."""
        started = time.perf_counter()
        at = At(summary, f"/by_horizon/{plan.horizon}" if several else "")
        body = guarded(
            f"horizon {plan.horizon}",
            lambda: horizon_sections(at, evidence(plan, comp, strategy), comp),
        )
        drawn = _Drawn(at, body)
        self._drawn[plan.horizon] = drawn
        if several:
            with tempfile.TemporaryDirectory() as tmp:
                run.log_artifact(write_page(Path(tmp) / REPORT_FILE, _document([drawn])))
        self.seconds += time.perf_counter() - started

    def publish(self, run: Run, folder: Path) -> Path:
        """Write the page into ``folder`` (the summary's) and log it on the job's run."""
        started = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        path = write_page(folder / REPORT_FILE, _document(list(self._drawn.values())))
        run.log_artifact(path)
        self.seconds += time.perf_counter() - started
        log.info("%s: %d KB, drawn in %.2f s", path, path.stat().st_size // 1024, self.seconds)
        return path
