"""`fetch`, `validate` and `data list|import|rebuild`: bring prices in, check them, see what
is kept, and rebuild the warehouse from it."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.common import with_config
from pipeline.errors import DataError, StockpipeError

if TYPE_CHECKING:  # settings (pydantic) is imported when a command runs, not for --help
    from pipeline.settings import StockpipeConfig


@click.command()
@with_config()
@click.option("--tickers", required=True, help="Comma-separated, e.g. NVDA,SPY.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None)
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), default=None)
# Only daily bars exist; the flag stays so that scripts passing `--interval 1d` keep working.
@click.option(
    "--interval", type=click.Choice(["1d"]), default="1d", show_default=True, help="Daily bars."
)
def fetch(
    cfg: StockpipeConfig,
    tickers: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    interval: str,
) -> None:
    """Download daily bars with yfinance into a raw snapshot and the warehouse."""
    from pipeline import bootstrap
    from pipeline.config import apply_overrides
    from pipeline.data.ingest import ingest
    from pipeline.data.tickers import normalise_tickers

    try:  # the one ticker rule of files, data.yaml and the API; exit 2 naming the flag
        names = normalise_tickers(t for t in tickers.split(",") if t.strip())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--tickers'") from None
    dates = {"start": start.date() if start else None, "end": end.date() if end else None}
    cfg = apply_overrides(cfg, **{k: v for k, v in dates.items() if v})
    src = bootstrap.yfinance_source(cfg, names)
    result = ingest(src, bootstrap.snapshots(cfg), bootstrap.store(cfg), "yfinance", src.params)
    for snap in result.snapshots:
        click.echo(f"{snap.id}  rows {snap.rows}  {snap.first_date}..{snap.last_date}")


@click.command()
@with_config("data")
@click.option(
    "--contract-only",
    is_flag=True,
    help="Check the data contract only, not whether this config can train on the data.",
)
def validate(cfg: StockpipeConfig, contract_only: bool) -> None:
    """Check the input (or --data) against the data contract, and whether this config can
    train on it (history, folds, summary path, tracking store); write nothing."""
    from pipeline import bootstrap
    from pipeline.data.readers import FileSource
    from pipeline.readiness import readiness

    src = bootstrap.source(cfg)
    try:
        batch = src.load()
    except DataError as exc:
        click.echo(f"INVALID\n{exc}", err=True)
        sys.exit(2)
    for report in src.reports if isinstance(src, FileSource) else []:
        for warning in report.warnings:
            click.echo(f"warning: {warning.describe(report.path)}")
    first, last = str(batch.frame["date"].min()), str(batch.frame["date"].max())
    click.echo(
        f"OK: {batch.frame.height} rows, tickers {list(batch.tickers)}, {first}..{last}, "
        f"sha256 {batch.sha256}"
    )
    if contract_only:
        return
    try:
        lines = readiness(cfg, batch, bootstrap.benchmark_source(cfg))
    except StockpipeError as exc:
        click.echo(f"cannot train with this config:\n{exc}", err=True)
        sys.exit(exc.exit_code)  # what `train` exits with: 4 for an unreachable tracker
    click.echo("\n".join(lines))


@click.group()
def data() -> None:
    """Raw snapshots: list them, import files, rebuild the warehouse from them."""


@data.command("list")
@with_config()
def list_snapshots(cfg: StockpipeConfig) -> None:
    """Every snapshot with its rows, date range, source and sha256."""
    from rich.console import Console
    from rich.table import Table

    from pipeline import bootstrap

    store = bootstrap.snapshots(cfg)
    entries = store.entries()
    if not entries:
        click.echo(
            f"no snapshots in {store.root}: run `stockpipe fetch` or `stockpipe data import`"
        )
        return
    table = Table(title=f"snapshots in {store.root}")
    for col in ("id", "rows", "first_date", "last_date", "source", "sha256"):
        table.add_column(col, no_wrap=True)
    for s in entries:
        table.add_row(s.id, str(s.rows), s.first_date, s.last_date, s.source, s.sha256[:16])
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@data.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@with_config()
def import_file(cfg: StockpipeConfig, path: Path) -> None:
    """Validate a CSV/parquet file, keep it as a snapshot and load it into the warehouse."""
    from pipeline import bootstrap
    from pipeline.config import apply_overrides
    from pipeline.data.ingest import ingest

    cfg = apply_overrides(cfg, data=path)
    src = bootstrap.source(cfg)
    result = ingest(
        src, bootstrap.snapshots(cfg), bootstrap.store(cfg), "file", {"path": str(path.resolve())}
    )
    for snap in result.snapshots:
        click.echo(f"{snap.id}  rows {snap.rows}  {snap.first_date}..{snap.last_date}")


@data.command("rebuild")
@with_config()
def rebuild_warehouse(cfg: StockpipeConfig) -> None:
    """Rebuild the warehouse from every raw snapshot; the old file is kept, renamed. The
    prediction log has its own file, which stays as it is."""
    from pipeline import bootstrap
    from pipeline.data.rebuild import rebuild

    result = rebuild(bootstrap.snapshots(cfg), cfg.resolve(cfg.data.warehouse))
    what = f"{result.snapshots} snapshot(s), {result.rows} rows"
    click.echo(f"rebuilt {result.warehouse} from {what}")
    if result.predictions:  # an old file that still kept the log: its rows moved out
        click.echo(f"{result.predictions} logged prediction(s) moved from the old file to the log")
    if result.log_problem is not None:  # the rows that were lost live only in the kept file
        click.echo(f"warning: old prediction log not read in full: {result.log_problem}", err=True)
    if result.kept_as is not None:
        click.echo(f"the previous file is kept as {result.kept_as}")
