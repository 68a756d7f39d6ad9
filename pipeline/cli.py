"""Command line: thin commands that load config, apply flags and call one use case.

Heavy libraries (mlflow, lightgbm, ...) are imported inside commands so ``--help`` stays fast.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.errors import StockpipeError

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("stockpipe")


def config_options(func: F) -> F:
    """Options shared by every command that reads data or talks to MLflow."""
    options = [
        click.option(
            "--config",
            "config_dir",
            type=click.Path(path_type=Path),
            default="conf",
            show_default=True,
            help="Config directory holding base/ (and local/).",
        ),
        click.option("--env", default=None, help="Overlay conf/<env>/ over base (e.g. server)."),
        click.option(
            "--data",
            type=click.Path(path_type=Path),
            default=None,
            help="CSV or parquet of date/open/high/low/close/volume[/ticker].",
        ),
        click.option("--tracking-uri", default=None, help="MLflow tracking URI override."),
        click.option("--seed", type=int, default=None, help="Random seed override."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def handle_errors(func: F) -> F:
    """Turn our typed errors into a one-line message and a non-zero exit, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StockpipeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def _load(config_dir: Path, env: str | None, **overrides: Any) -> Any:
    from pipeline.bootstrap import apply_overrides
    from pipeline.config import load_config

    return apply_overrides(load_config(config_dir, env), **overrides)


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="INFO", show_default=True)
@click.option("--log-json", is_flag=True, help="Log JSON lines instead of text.")
@click.version_option(package_name="stockpipe")
def main(log_level: str, log_json: bool) -> None:
    """stockpipe: leak-proof, tracked prediction models on daily stock prices."""
    from pipeline.logging_setup import setup_logging

    setup_logging(log_level, json_lines=log_json)


@main.command()
@config_options
@click.option("--trials", type=int, default=None, help="Optuna trials per candidate.")
@click.option(
    "--summary",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the JSON summary.",
)
@handle_errors
def train(
    config_dir: Path,
    env: str | None,
    data: Path | None,
    tracking_uri: str | None,
    seed: int | None,
    trials: int | None,
    summary: Path | None,
) -> None:
    """Tune every candidate on walk-forward folds, track it, register the champion."""
    from pipeline import bootstrap
    from pipeline.training.train import train as run_train

    cfg = _load(
        config_dir,
        env,
        data=data,
        trials=trials,
        seed=seed,
        tracking_uri=tracking_uri,
        summary=summary,
    )
    result = run_train(cfg, bootstrap.train_ports(cfg))
    path = cfg.resolve(cfg.training.summary_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    champ, m, base = result["champion"], result["metrics"], result["baselines"]["zero_return"]
    click.echo(
        f"champion: {champ['candidate']} -> {champ['registered_model']} v{champ['version']} "
        f"(@{champ['alias']})\n"
        f"mean over {len(result['folds'])} folds: rmse {m['rmse']:.6f} "
        f"(zero-return {base['rmse']:.6f}), mae {m['mae']:.6f}, "
        f"directional accuracy {m['directional_accuracy']:.3f} "
        f"(zero-return {base['directional_accuracy']:.3f})\n"
        f"summary: {path}  tracking: {result['tracking_uri']}  time: {result['seconds']}s"
    )


@main.command()
@config_options
@click.option(
    "--model-uri", default=None, help="Defaults to models:/<registered_model>@<champion_alias>."
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default="outputs/predictions.parquet",
    show_default=True,
)
@handle_errors
def score(
    config_dir: Path,
    env: str | None,
    data: Path | None,
    tracking_uri: str | None,
    seed: int | None,
    model_uri: str | None,
    output: Path,
) -> None:
    """Predict with the registered model from the latest history; write parquet."""
    from pipeline import bootstrap
    from pipeline.serving.score import score as run_score
    from pipeline.serving.sinks import ParquetSink

    cfg = _load(config_dir, env, data=data, seed=seed, tracking_uri=tracking_uri)
    out = run_score(cfg, bootstrap.score_ports(cfg), ParquetSink(output.resolve()), model_uri)
    click.echo(str(out))
    click.echo(f"wrote {out.height} row(s) to {output}")


@main.command()
@config_options
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@handle_errors
def folds(
    config_dir: Path,
    env: str | None,
    data: Path | None,
    tracking_uri: str | None,
    seed: int | None,
    fmt: str,
) -> None:
    """Print the walk-forward fold manifest (from the DuckDB view) and its hash."""
    from pipeline import bootstrap
    from pipeline.training.inspect import fold_manifest, folds_table

    cfg = _load(config_dir, env, data=data, seed=seed, tracking_uri=tracking_uri)
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


@main.command()
@config_options
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Parquet file for ticker, date, every feature and the target.",
)
@handle_errors
def features(
    config_dir: Path,
    env: str | None,
    data: Path | None,
    tracking_uri: str | None,
    seed: int | None,
    output: Path,
) -> None:
    """Write the computed feature frame: exactly what the model sees."""
    from pipeline import bootstrap
    from pipeline.serving.sinks import ParquetSink
    from pipeline.training.inspect import feature_table

    cfg = _load(config_dir, env, data=data, seed=seed, tracking_uri=tracking_uri)
    frame = feature_table(cfg, bootstrap.data_ports(cfg))
    ParquetSink(output.resolve()).write(frame)
    click.echo(f"wrote {frame.height} rows x {frame.width} columns to {output}")


@main.command()
@config_options
@click.option(
    "--model-uri", default=None, help="Defaults to models:/<registered_model>@<champion_alias>."
)
@click.option(
    "--output-dir", type=click.Path(path_type=Path), default="outputs/backtest", show_default=True
)
@handle_errors
def backtest(
    config_dir: Path,
    env: str | None,
    data: Path | None,
    tracking_uri: str | None,
    seed: int | None,
    model_uri: str | None,
    output_dir: Path,
) -> None:
    """Re-run walk-forward for a registered model (refit per fold); write and log a report."""
    from pipeline import bootstrap
    from pipeline.training.backtest import backtest as run_backtest

    cfg = _load(config_dir, env, data=data, seed=seed, tracking_uri=tracking_uri)
    report = run_backtest(cfg, bootstrap.backtest_ports(cfg), output_dir.resolve(), model_uri)
    b = report["baselines"]["buy_and_hold"]
    lo, hi = report["sharpe_ci"]
    click.echo(
        f"{report['model_uri']} (v{report['model_version']}), {len(report['folds'])} folds\n"
        f"rmse {_num(report['rmse'], 6)}  directional accuracy "
        f"{_num(report['directional_accuracy'])}  ic {_num(report['ic'])}  "
        f"rank ic {_num(report['rank_ic'])}\n"
        f"strategy sharpe {_num(report['sharpe'], 2)} (95% CI {_num(lo, 2)} .. {_num(hi, 2)}), "
        f"deflated sharpe {_num(report['deflated_sharpe'])} over {report['n_trials']} trials, "
        f"buy-and-hold sharpe {_num(b['sharpe'], 2)}\n"
        f"files: {output_dir}"
    )


if __name__ == "__main__":
    main()
