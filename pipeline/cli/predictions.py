"""`predictions`: export the prediction log joined with realised outcomes (parquet or CSV)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.common import with_config

if TYPE_CHECKING:
    from pipeline.settings import StockpipeConfig

DATE = click.DateTime(formats=["%Y-%m-%d"])


def _export_path(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """Click callback of --output: the suffix chooses the format; any other exits 2."""
    from pipeline.serving.sinks import SINKS

    if value.suffix.lower() not in SINKS:
        raise click.BadParameter(
            f"{value} ends in neither {' nor '.join(SINKS)}: the suffix chooses the format "
            f"(e.g. {value.with_suffix('.parquet').name})",
            ctx=ctx,
            param=param,
        )
    return value


def _day(value: dt.datetime | None) -> dt.date | None:
    return None if value is None else value.date()


@click.command()
@with_config("tracking")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    callback=_export_path,
    help="File to write: .parquet or .csv (the suffix chooses the format).",
)
@click.option("--start", type=DATE, default=None, help="First as-of date (inclusive).")
@click.option("--end", type=DATE, default=None, help="Last as-of date (inclusive).")
@click.option(
    "--model-uri",
    default=None,
    help="Only this version's rows: models:/Name/3, or models:/Name@alias (the version the "
    "alias names now). Default: every model's.",
)
@click.option(
    "--source",
    "sources",
    default=None,
    help="Only these sources, comma-separated: score, cycle, replay, api. Default: all.",
)
def predictions(
    cfg: StockpipeConfig,
    output: Path,
    start: dt.datetime | None,
    end: dt.datetime | None,
    model_uri: str | None,
    sources: str | None,
) -> None:
    """Export logged predictions with their realised returns (null until known).

    One row per logged prediction: ticker, as_of_date, horizon, prediction, the interval
    bounds when the model gives them (lower_80, upper_80, ...), model_name, model_version,
    run_id, source, scored_at (UTC), realised_date and realised, the forward log return
    ln(close[t+h] / close[t]) over the horizon's trading rows. The log is the one beside
    data.warehouse (<stem>.log.sqlite); no log there exits 2.
    """
    from pipeline import bootstrap
    from pipeline.atomic import ensure_writable
    from pipeline.serving.export import ExportQuery, export_predictions
    from pipeline.serving.sinks import file_sink

    chosen = None
    if sources is not None:
        chosen = tuple(s.strip().lower() for s in sources.split(",") if s.strip())
    query = ExportQuery(_day(start), _day(end), model_uri, chosen)
    query.check()  # a bad filter is told before the output folder is even looked at
    path = ensure_writable(output, "output")
    result = export_predictions(cfg, bootstrap.export_ports(cfg), file_sink(path), query)
    click.echo(result.summary())
