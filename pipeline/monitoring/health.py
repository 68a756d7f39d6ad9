"""Service health from the prediction log: what the API served, per day.

The log holds no latency (the service measures it: ``GET /metrics``), and one row per
(version, ticker, as-of date, horizon), so a later request for the same ticker and date
replaces the earlier row. Requests are counted as distinct request times among the rows that
survive: a lower bound, said so in the report rather than presented as exact.
"""

from __future__ import annotations

import polars as pl

from pipeline.monitoring.report import DayCount, HealthSection


def health_section(rows: pl.DataFrame) -> HealthSection | None:
    """Counts of the API's logged rows of one version (all sources may be given); None when
    the API has logged nothing for it."""
    api = rows.filter(pl.col("source") == "api")
    if api.height == 0:
        return None
    per_day = (
        api.group_by(pl.col("scored_at").dt.date().alias("day"))
        .agg(
            pl.col("scored_at").n_unique().alias("requests"),
            pl.len().alias("prediction_rows"),
        )
        .sort("day")
    )
    return HealthSection(
        requests=int(api["scored_at"].n_unique()),
        prediction_rows=api.height,
        first_request=str(api["scored_at"].min()),
        last_request=str(api["scored_at"].max()),
        per_day=[
            DayCount(
                day=str(r["day"]), requests=r["requests"], prediction_rows=r["prediction_rows"]
            )
            for r in per_day.iter_rows(named=True)
        ],
    )
