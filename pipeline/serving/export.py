"""`stockpipe predictions`: what was predicted and how it turned out, as one file.

Every logged prediction (``score``, ``replay``, ``cycle`` and ``POST /predict`` rows) next to
its realised forward log return. The realised return comes from the one definition of an
outcome, the ``v_prediction_outcomes`` view (``sql/log/055_v_prediction_outcomes.sql``, through
``DuckDBStore.outcomes``): null until the price ``horizon`` trading rows after the as-of date
is in the warehouse. The interval bounds come from the log's own ``intervals`` column, one
column per bound that any exported row has.

Filters: the as-of dates (inclusive), one registered version (``models:/Name/3``, or what an
alias names now), and the sources. Without a warehouse file (a host that only serves: the
service writes the log, never the warehouse) the rows are exported with realised unknown,
and nothing is created; without a log there is nothing to export (``NoPredictionLogError``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import polars as pl

from pipeline.domain import PredictionSink, VersionResolver
from pipeline.errors import ConfigError, StockpipeError
from pipeline.settings import StockpipeConfig
from pipeline.tracking.uris import parse_model_uri

# The log's sources (its CHECK, sql/log/050_predictions.sql), the track record first.
SOURCES: tuple[str, ...] = ("score", "cycle", "replay", "api")
# The log's key plus when it was scored: the bounds of exactly the row read (a row replaced
# between the two reads keeps null bounds rather than another scoring's).
ROW = ("model_name", "model_version", "ticker", "as_of_date", "horizon", "source", "scored_at")
FRONT = ("ticker", "as_of_date", "horizon", "prediction")  # then the bounds, then BACK
BACK = ("model_name", "model_version", "run_id", "source", "scored_at", "realised_date", "realised")
ORDER = ("as_of_date", "ticker", "horizon", "model_name", "model_version", "source")


class NoPredictionLogError(StockpipeError):
    """The configured warehouse has no prediction log beside it: nothing was ever logged
    there, or the configuration points at another warehouse."""


class LoggedPredictions(Protocol):
    """The prediction log, read (``pipeline.data.predlog.SQLiteLog``)."""

    @property
    def path(self) -> Path | str: ...

    def exists(self) -> bool: ...

    def rows(self) -> pl.DataFrame:
        """Every logged row (``LOG_COLUMNS``)."""
        ...

    def bounds(self) -> pl.DataFrame:
        """The rows with interval bounds: ``ROW``, then one Float64 column per bound."""
        ...


class Outcomes(Protocol):
    """The log joined to realised returns (``v_prediction_outcomes``)."""

    def outcomes(self) -> pl.DataFrame: ...


@dataclass(frozen=True, kw_only=True)
class ExportPorts:
    """The log, the warehouse's outcomes (None: no warehouse yet) and the registry."""

    log: LoggedPredictions
    outcomes: Outcomes | None
    versions: VersionResolver  # what an alias names now, for --model-uri


@dataclass(frozen=True)
class ExportQuery:
    """Which logged rows to export; every filter is optional (None: all)."""

    start: dt.date | None = None
    end: dt.date | None = None
    model_uri: str | None = None
    sources: tuple[str, ...] | None = None

    def check(self) -> None:
        """ConfigError (exit 2) for a reversed range or an unknown source, before any I/O."""
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ConfigError(f"--start {self.start} is after --end {self.end}")
        if self.sources is not None and (not self.sources or not set(self.sources) <= set(SOURCES)):
            raise ConfigError(
                f"--source {','.join(self.sources)}: give one or more of {', '.join(SOURCES)}"
            )


@dataclass(frozen=True)
class ExportResult:
    """What was written: the rows, where, and whether outcomes could be known at all."""

    frame: pl.DataFrame
    path: Path
    note: str | None = None  # why no outcome is known (no warehouse yet)

    @property
    def realised(self) -> int:
        """How many rows have a realised return."""
        return self.frame.height - self.frame["realised"].null_count()

    def summary(self) -> str:
        """One line: rows written, their as-of span, how many realised, the path."""
        if self.frame.is_empty():
            line = f"wrote 0 predictions to {self.path}: no logged prediction matches"
        else:
            dates = pl.col("as_of_date")
            first, last = self.frame.select(dates.min(), dates.max().alias("last")).row(0)
            line = (
                f"wrote {self.frame.height} prediction(s) as of {first} to {last} "
                f"({self.realised} with a realised return) to {self.path}"
            )
        return line if self.note is None else f"{line}; {self.note}"


def export_predictions(
    cfg: StockpipeConfig, ports: ExportPorts, sink: PredictionSink, query: ExportQuery
) -> ExportResult:
    """Write the logged predictions ``query`` selects, each with its realised return and
    interval bounds, to ``sink``; sorted by as-of date, ticker, horizon, model and source.

    Refused before the log is read: a bad ``query`` or a model URI naming no registered
    version (ConfigError, TrackingError), no log (NoPredictionLogError; with a warehouse only
    once it was opened, which moves a log an older release kept inside it); all exit 2.
    """
    query.check()
    if not ports.log.exists() and ports.outcomes is None:
        raise _no_log(ports.log.path)
    model = (
        model_key(query.model_uri, ports.versions, cfg.stage_aliases) if query.model_uri else None
    )
    # Opening the warehouse first moves a log it still keeps (older releases) into the file.
    table = ports.outcomes.outcomes() if ports.outcomes is not None else _unknown(ports.log)
    if not ports.log.exists():
        raise _no_log(ports.log.path)
    chosen = table.filter(_where(query, model))
    frame = _with_bounds(chosen, ports.log.bounds()).sort(ORDER)
    note = None if ports.outcomes is not None else "no warehouse yet: no realised return known"
    return ExportResult(frame, sink.write(frame), note)


def model_key(uri: str, versions: VersionResolver, aliases: Mapping[str, str]) -> tuple[str, str]:
    """The (name, version) ``uri`` names: a version as given (the registry is not asked: its
    rows are exported even if the version was deleted since), an alias, ``Latest`` or a stage
    as the registry resolves it now. ConfigError for a URI that is no registry URI (a logged
    model's ``models:/m-...``), TrackingError for a name, alias or version the registry lacks
    (both exit 2)."""
    ref = parse_model_uri(uri, aliases)
    if ref is None:
        raise ConfigError(
            f"--model-uri {uri}: names no registered version, which is what the log records; "
            "give models:/Name/3 or models:/Name@alias"
        )
    return ref.name, ref.version if ref.version is not None else versions.resolve(uri)


def _no_log(path: Path | str) -> NoPredictionLogError:
    return NoPredictionLogError(
        f"no prediction log at {path}: nothing was logged beside this warehouse yet (score, "
        "replay or serve write it), or data.warehouse (--config/--env) names another one"
    )


def _unknown(log: LoggedPredictions) -> pl.DataFrame:
    """The log's rows with no realised return known (there are no prices to know it from)."""
    return log.rows().with_columns(
        pl.lit(None, dtype=pl.Date).alias("realised_date"),
        pl.lit(None, dtype=pl.Float64).alias("realised"),
    )


def _where(query: ExportQuery, model: tuple[str, str] | None) -> pl.Expr:
    """The rows ``query`` keeps: as-of dates in its range, ``model``'s, of its sources."""
    keep = pl.lit(True)
    if query.start is not None:
        keep &= pl.col("as_of_date") >= query.start
    if query.end is not None:
        keep &= pl.col("as_of_date") <= query.end
    if model is not None:
        keep &= (pl.col("model_name") == model[0]) & (pl.col("model_version") == model[1])
    if query.sources is not None:
        keep &= pl.col("source").is_in(query.sources)
    return keep


def _with_bounds(frame: pl.DataFrame, bounds: pl.DataFrame) -> pl.DataFrame:
    """``frame`` in the file's column order, with every bound column any of its rows has."""
    joined = frame.join(bounds, on=list(ROW), how="left")
    extra = [c for c in bounds.columns if c not in ROW]
    present = [c for c in extra if joined[c].null_count() < joined.height]
    return joined.select(*FRONT, *present, *BACK)
