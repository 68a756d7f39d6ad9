"""When the cycle scores and retrains: pure functions of trading dates and recorded facts.

Every decision here reads state that outlives the process: the data's trading dates, the
prediction log (the last date a version was scored for), the registry (what data the last
retrain used) and the cycle records (which evenings alerted). None of it reads a clock or a
file, so a rerun after a kill decides exactly what the killed run would have.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from pipeline.errors import DataError
from pipeline.settings import RetrainConfig


def resolve_as_of(dates: Sequence[dt.date], asked: dt.date | None) -> dt.date:
    """The evening a cycle works for: the last trading date of the data, or the last one on
    or before ``asked`` (a weekend or holiday stands for the trading day before it)."""
    if not dates:
        raise DataError("the data holds no trading date: nothing to run a cycle for")
    if asked is None:
        return dates[-1]
    kept = [d for d in dates if d <= asked]
    if not kept:
        raise DataError(f"--as-of {asked} is before the data's first trading date {dates[0]}")
    return kept[-1]


def dates_to_score(
    dates: Sequence[dt.date], after: dt.date | None, as_of: dt.date
) -> list[dt.date]:
    """The trading dates in ``(after, as_of]``: every evening since the last one scored
    (``after``), missed evenings included. Without ``after`` (nothing known), the as-of date
    alone."""
    if after is None:
        return [as_of] if as_of in dates else []
    return [d for d in dates if after < d <= as_of]


def trading_days_between(dates: Iterable[dt.date], since: dt.date, until: dt.date) -> int:
    """How many trading dates lie in ``(since, until]`` (0 when ``until`` is not later)."""
    return sum(1 for d in dates if since < d <= until)


def alert_since(history: Iterable[tuple[dt.date, bool]], as_of: dt.date) -> dt.date:
    """The first evening of the alert episode that an alert on ``as_of`` belongs to.

    ``history`` holds (as-of, alerted) of the evenings whose monitor step ran; walking back
    from ``as_of`` through earlier evenings that alerted too, the episode starts at the last
    one reached. Evenings without a record (never run) neither extend nor end an episode.
    """
    start = as_of
    for day, alerted in sorted((h for h in history if h[0] < as_of), reverse=True):
        if not alerted:
            break
        start = day
    return start


@dataclass(frozen=True)
class LastRetrain:
    """The newest registered version (the last retrain, promoted or not) and the last
    trading date of the data it was trained on; ``note`` says why that date is unknown."""

    version: str | None
    through: dt.date | None
    note: str = ""


class RetrainDecision(BaseModel):
    """Whether this evening retrains, and why (written into the cycle record)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    due: bool
    reason: str
    scheduled: bool
    """Due by the schedule: the last retrain's data ends ``every_days`` or more before."""
    on_alert: bool
    """Due because monitor alerted and no retrain has used data from the episode's start."""
    last_version: str | None
    trained_through: dt.date | None
    trading_days: int | None
    """Trading days from the last retrain's data end to the as-of date."""
    every_days: int
    alerted: bool
    alert_since: dt.date | None


def decide_retrain(
    policy: RetrainConfig,
    dates: Sequence[dt.date],
    as_of: dt.date,
    last: LastRetrain,
    alerted: bool,
    alert_start: dt.date | None,
) -> RetrainDecision:
    """Retrain when the last retrain (promoted or not: a lost challenger counts) used data
    ending ``policy.every_days`` trading days or more before ``as_of``, or, with
    ``policy.on_alert``, when monitor alerted and no retrain has used data from the first
    evening of the alert episode (``alert_start``) on. So one alert episode brings at most
    one retrain beyond the schedule, whatever the gate then says."""
    through = last.through
    days = None if through is None else trading_days_between(dates, through, as_of)
    scheduled = days is None or days >= policy.every_days
    answered = through is not None and alert_start is not None and through >= alert_start
    on_alert = policy.on_alert and alerted and not answered
    why = [_schedule_reason(last, days, as_of, policy.every_days, scheduled)]
    if alerted:
        why.append(_alert_reason(policy.on_alert, alert_start, through, on_alert))
    return RetrainDecision(
        due=scheduled or on_alert,
        reason="; ".join(why),
        scheduled=scheduled,
        on_alert=on_alert,
        last_version=last.version,
        trained_through=through,
        trading_days=days,
        every_days=policy.every_days,
        alerted=alerted,
        alert_since=alert_start if alerted else None,
    )


def _schedule_reason(
    last: LastRetrain, days: int | None, as_of: dt.date, every: int, due: bool
) -> str:
    if last.through is None:
        what = f"v{last.version}" if last.version else "no version"
        return f"due: the data the last retrain ({what}) used is not known ({last.note})"
    used = f"the last retrain (v{last.version}) used data through {last.through}"
    if due:
        return f"due: {used}, {days} trading day(s) before {as_of} (every {every})"
    return f"not due: {used}, {days} of {every} trading day(s) before {as_of}"


def _alert_reason(enabled: bool, start: dt.date | None, through: dt.date | None, due: bool) -> str:
    since = f"monitor alerted (since {start})"
    if not enabled:
        return f"{since}, but retrain.on_alert is off"
    if due:
        return f"due: {since} and no retrain has used data from {start} on"
    return (
        f"{since}, but the retrain on data through {through} already answered this alert: "
        "the next one is the scheduled one"
    )
