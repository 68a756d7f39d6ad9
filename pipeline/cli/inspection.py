"""`folds`, `features` and `backtest`: inspect what training uses and how it performs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.common import data_given, model_uri_option, num, parquet_path, with_config
from pipeline.cli.run import portfolio_lines

if TYPE_CHECKING:  # settings (pydantic) is imported when a command runs, not for --help
    from pipeline.settings import StockpipeConfig


@click.command()
@with_config("data", "tracking", "seed")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def folds(cfg: StockpipeConfig, fmt: str) -> None:
    """Print the walk-forward fold manifest (from the DuckDB view) and its hash."""
    from pipeline import bootstrap
    from pipeline.training.inspection import fold_manifest, folds_table

    manifest, digest = fold_manifest(cfg, bootstrap.data_ports(cfg))
    if fmt == "json":
        doc = {"folds_hash": digest, "folds": folds_table(manifest).to_dicts()}
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"walk-forward folds ({cfg.training.folds.scheme}), hash {digest}")
    frame = folds_table(manifest)
    for col in frame.columns:
        table.add_column(col, justify="right", no_wrap=True)
    for row in frame.iter_rows():
        table.add_row(*(str(v) for v in row))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@click.command()
@with_config("data", "tracking", "seed")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    callback=parquet_path,
    help="Parquet file for ticker, date, every feature and the target (suffix .parquet).",
)
def features(cfg: StockpipeConfig, output: Path) -> None:
    """Write the computed feature frame: exactly what the model sees."""
    from pipeline import bootstrap
    from pipeline.atomic import ensure_writable
    from pipeline.serving.sinks import ParquetSink
    from pipeline.training.inspection import feature_table

    ensure_writable(output, "--output")  # before the work, not after it
    frame = feature_table(cfg, bootstrap.data_ports(cfg))
    ParquetSink(output.resolve(), compression="lz4").write(frame)
    click.echo(f"wrote {frame.height} rows x {frame.width} columns to {output}")


@click.command()
@with_config("data", "tracking", "seed")
@model_uri_option
@click.option(
    "--output-dir", type=click.Path(path_type=Path), default="outputs/backtest", show_default=True
)
def backtest(cfg: StockpipeConfig, model_uri: str | None, output_dir: Path) -> None:
    """Re-run walk-forward for a registered model (refit per fold); write and log a report.

    Without --model-uri: every configured horizon's champion, into OUTPUT_DIR/h<h>/ when
    there are several. Without --data/--snapshot: the snapshots the model was trained on
    (its lineage), so the backtest re-measures what training measured."""
    from pipeline import bootstrap
    from pipeline.atomic import ensure_writable_dir
    from pipeline.training.backtest import backtest_horizons

    ensure_writable_dir(output_dir, "--output-dir")  # before the refits, not after them
    data = bootstrap.model_data(cfg, model_uri, given=data_given(), replay=True)
    click.echo(data.note)
    ports = bootstrap.backtest_ports(cfg, data)
    for report in backtest_horizons(cfg, ports, output_dir.resolve(), model_uri):
        b, zero = report.baselines.buy_and_hold, report.baselines.zero_return
        lo, hi = report.sharpe_ci
        click.echo(
            f"{report.model_uri} (v{report.model_version}), horizon {report.horizon}, "
            f"{len(report.folds)} folds\n"
            f"pooled: rmse {num(report.rmse, 6)} (zero-return {num(zero.rmse, 6)})  directional "
            f"accuracy {num(report.directional_accuracy)}  ic {num(report.ic)}  "
            f"rank ic {num(report.rank_ic)}\n"
            f"strategy sharpe {num(report.sharpe, 2)} (95% CI {num(lo, 2)} .. {num(hi, 2)}), "
            f"deflated sharpe {num(report.deflated_sharpe)} over {report.n_trials} trials, "
            f"buy-and-hold sharpe {num(b.sharpe, 2)}"
        )
        for line in portfolio_lines(report.portfolio):  # a panel's, as `train` prints it
            click.echo(line)
    click.echo(f"files: {output_dir}")
