"""Which logged predictions `monitor` grades (issue 21 item 2): the track record (score,
cycle, replay) by default, one row per prediction key, never the API's unless asked for."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from pipeline.errors import ConfigError
from pipeline.monitoring.monitor import check_sources
from pipeline.monitoring.performance import TRACK_RECORD, graded


def _rows(*logged: tuple[int, str, float]) -> pl.DataFrame:
    """(day of January 2024, source, prediction) rows of one model version."""
    return pl.DataFrame(
        {
            "ticker": "NVDA",
            "as_of_date": [dt.date(2024, 1, day) for day, _, _ in logged],
            "horizon": 1,
            "prediction": [p for _, _, p in logged],
            "model_name": "M",
            "model_version": "1",
            "source": [s for _, s, _ in logged],
        }
    )


LOG = _rows(
    (2, "score", 0.1),
    (2, "replay", 0.2),  # the same date replayed later: the evening's score wins
    (2, "api", 0.9),  # any client's call: never graded by default
    (3, "replay", 0.3),
    (4, "api", 0.8),
    (5, "cycle", 0.5),
    (5, "replay", 0.6),
)


def _graded(sources: tuple[str, ...] = TRACK_RECORD) -> dict[int, tuple[str, float]]:
    out = graded(LOG, sources)
    assert out.select("as_of_date").is_unique().all()
    return {
        d.day: (s, p) for d, s, p in out.select("as_of_date", "source", "prediction").iter_rows()
    }


def test_the_track_record_is_graded_once_per_key_without_api_rows() -> None:
    assert _graded() == {2: ("score", 0.1), 3: ("replay", 0.3), 5: ("cycle", 0.5)}


def test_the_sources_asked_for_and_their_order_decide() -> None:
    assert _graded(("api",)) == {2: ("api", 0.9), 4: ("api", 0.8)}
    assert _graded(("replay", "score")) == {
        2: ("replay", 0.2),
        3: ("replay", 0.3),
        5: ("replay", 0.6),
    }


@pytest.mark.parametrize("sources", [(), ("score", "nope"), ("score", "score")])
def test_unknown_missing_or_repeated_sources_are_refused(sources: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError, match="score, cycle, replay, api"):
        check_sources(sources)
