"""When `cycle` scores and retrains (pipeline/operations/schedule.py), and its configuration.

Pure functions of trading dates and recorded facts: a rerun after a kill must decide what
the killed run would have, so nothing here reads a clock or a file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from support import make_project, overlay

from pipeline.config import load_config
from pipeline.errors import ConfigError, DataError
from pipeline.operations.schedule import (
    LastRetrain,
    RetrainDecision,
    alert_since,
    dates_to_score,
    decide_retrain,
    resolve_as_of,
    trading_days_between,
)
from pipeline.settings import RetrainConfig

D = dt.date
# Two trading weeks: Monday 2026-08-03 to Friday 2026-08-14, no weekend rows.
WEEKS = tuple(D(2026, 8, 3) + dt.timedelta(days=i) for i in range(12) if i % 7 < 5)


def test_the_as_of_date_is_the_last_trading_date_on_or_before_the_one_asked() -> None:
    assert resolve_as_of(WEEKS, None) == D(2026, 8, 14)
    assert resolve_as_of(WEEKS, D(2026, 8, 9)) == D(2026, 8, 7)  # a Sunday is that Friday
    assert resolve_as_of(WEEKS, D(2026, 8, 10)) == D(2026, 8, 10)
    with pytest.raises(DataError, match="before the data's first trading date"):
        resolve_as_of(WEEKS, D(2026, 8, 1))
    with pytest.raises(DataError, match="no trading date"):
        resolve_as_of((), None)


def test_every_date_since_the_last_one_scored_is_scored_so_missed_evenings_are_backfilled() -> None:
    assert dates_to_score(WEEKS, D(2026, 8, 6), D(2026, 8, 11)) == [
        D(2026, 8, 7),
        D(2026, 8, 10),
        D(2026, 8, 11),
    ]
    assert dates_to_score(WEEKS, D(2026, 8, 11), D(2026, 8, 11)) == []  # done: nothing
    assert dates_to_score(WEEKS, D(2026, 8, 14), D(2026, 8, 11)) == []  # scored past it
    assert dates_to_score(WEEKS, None, D(2026, 8, 11)) == [D(2026, 8, 11)]  # nothing known


def test_trading_days_are_counted_on_the_data_calendar_not_the_clock() -> None:
    assert trading_days_between(WEEKS, D(2026, 8, 7), D(2026, 8, 10)) == 1  # over a weekend
    assert trading_days_between(WEEKS, D(2026, 8, 3), D(2026, 8, 14)) == 9
    assert trading_days_between(WEEKS, D(2026, 8, 14), D(2026, 8, 3)) == 0


def test_an_alert_episode_starts_at_the_first_of_the_alerting_evenings_before_it() -> None:
    history = [
        (D(2026, 8, 3), True),
        (D(2026, 8, 4), False),
        (D(2026, 8, 5), True),
        # 2026-08-06 never ran: it neither extends nor ends the episode
        (D(2026, 8, 7), True),
    ]
    assert alert_since(history, D(2026, 8, 10)) == D(2026, 8, 5)
    assert alert_since(history, D(2026, 8, 5)) == D(2026, 8, 5)  # its own evening is left out
    assert alert_since([], D(2026, 8, 10)) == D(2026, 8, 10)


POLICY = RetrainConfig(every_days=5, on_alert=True)


def decide(
    through: dt.date | None,
    as_of: dt.date,
    alerted: bool = False,
    start: dt.date | None = None,
    policy: RetrainConfig = POLICY,
) -> RetrainDecision:
    last = LastRetrain("2", through, "" if through else "no snapshot_ids")
    return decide_retrain(policy, WEEKS, as_of, last, alerted, start)


def test_a_retrain_is_due_every_days_trading_days_after_the_data_the_last_one_used() -> None:
    early = decide(D(2026, 8, 3), D(2026, 8, 7))  # 4 trading days later
    assert not early.due and early.trading_days == 4
    assert early.reason.startswith("not due: the last retrain (v2) used data through 2026-08-03")
    due = decide(D(2026, 8, 3), D(2026, 8, 10))  # 5 trading days later, over a weekend
    assert due.due and due.scheduled and not due.on_alert and due.trading_days == 5
    unknown = decide(None, D(2026, 8, 4))
    assert unknown.due and "not known (no snapshot_ids)" in unknown.reason


def test_an_alert_brings_one_retrain_per_episode_not_one_a_night_after_a_lost_gate() -> None:
    first = decide(D(2026, 8, 3), D(2026, 8, 5), alerted=True, start=D(2026, 8, 5))
    assert first.due and first.on_alert and not first.scheduled
    assert "no retrain has used data from 2026-08-05 on" in first.reason
    # The next evening the alert goes on; the retrain of 2026-08-05 (promoted or not) used
    # data through that date, so it answered this episode: no retrain until the schedule's.
    after = decide(D(2026, 8, 5), D(2026, 8, 6), alerted=True, start=D(2026, 8, 5))
    assert not after.due and "already answered this alert" in after.reason
    scheduled = decide(D(2026, 8, 5), D(2026, 8, 12), alerted=True, start=D(2026, 8, 5))
    assert scheduled.due and scheduled.scheduled and not scheduled.on_alert
    off = decide(D(2026, 8, 3), D(2026, 8, 5), True, D(2026, 8, 5), RetrainConfig(on_alert=False))
    assert not off.due and "retrain.on_alert is off" in off.reason


def test_operations_yaml_is_optional_validated_and_overlaid(tmp_path: Path) -> None:
    conf = make_project(tmp_path)
    shipped = load_config(conf).operations
    assert (shipped.ingest, shipped.retrain.every_days, shipped.retrain.on_alert) == (
        "file",
        20,
        True,
    )
    overlay(conf, "operations", retrain={"every_days": 10})
    assert load_config(conf).operations.retrain == RetrainConfig(every_days=10, on_alert=True)
    # A config folder older than the file: its overlay still applies, without a base file.
    (conf / "base" / "operations.yaml").unlink()
    assert load_config(conf).operations.retrain.every_days == 10
    overlay(conf, "operations", ingest="ftp", retrain={"every_days": 0})
    with pytest.raises(ConfigError) as err:
        load_config(conf)
    assert "local/operations.yaml: key 'ingest'" in str(err.value)
    assert "local/operations.yaml: key 'retrain.every_days'" in str(err.value)
