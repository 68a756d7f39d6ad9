"""Shared CLI plumbing: config options, error handling and config loading."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.cli.interrupts import exit_interrupted
from pipeline.errors import StockpipeError, exit_code_of

F = TypeVar("F", bound=Callable[..., Any])


def _apply(func: F, options: list[Callable[[F], F]]) -> F:
    # click lists options in decorator order: apply the last one first.
    for option in reversed(options):
        func = option(func)
    return func


def base_options(func: F) -> F:
    """--config and --env: for every command that reads the configuration."""
    return _apply(
        func,
        [
            click.option(
                "--config",
                "config_dir",
                type=click.Path(path_type=Path),
                default="conf",
                show_default=True,
                help="Config directory holding base/ (and local/).",
            ),
            click.option(
                "--env", default=None, help="Overlay conf/<env>/ over base (e.g. server)."
            ),
        ],
    )


def data_options(func: F) -> F:
    """--data and --snapshot: for commands that read the configured price input."""
    return _apply(
        func,
        [
            click.option(
                "--data",
                type=click.Path(path_type=Path),
                default=None,
                help="CSV or parquet of date/open/high/low/close/volume[/ticker].",
            ),
            click.option(
                "--snapshot",
                default=None,
                help="Use these raw snapshot id(s) (comma-separated) as input.",
            ),
        ],
    )


def data_given() -> bool:
    """Whether this command line gave --data or --snapshot.

    ``with_config`` turns both into config overrides, so only click's context still knows
    the user typed them: `backtest`, `monitor` and `score` read the model's own data unless
    they did (``pipeline.bootstrap.model_data``).
    """
    params = click.get_current_context().params
    return params.get("data") is not None or params.get("snapshot") is not None


def tracking_options(func: F) -> F:
    """--tracking-uri: for commands that talk to MLflow."""
    return click.option("--tracking-uri", default=None, help="MLflow tracking URI override.")(func)


def seed_option(func: F) -> F:
    """--seed: for commands with randomness (tuning, bootstrap intervals)."""
    return click.option("--seed", type=int, default=None, help="Random seed override.")(func)


def model_uri_option(func: F) -> F:
    """--model-uri: for commands that load a registered model."""
    return click.option(
        "--model-uri", default=None, help="Defaults to models:/<registered_model>@<champion_alias>."
    )(func)


GROUPS: dict[str, Callable[[Any], Any]] = {
    "data": data_options,
    "tracking": tracking_options,
    "seed": seed_option,
}
# Options that become config overrides rather than command arguments (see apply_overrides).
CONFIG_FLAGS = ("data", "snapshot", "tracking_uri", "seed", "trials", "summary", "n_jobs")


def with_config(*groups: str) -> Callable[[F], F]:
    """The shared plumbing of every command that reads the configuration, in one decorator.

    Adds --config/--env plus the named option ``groups`` ("data", "tracking", "seed"), loads
    and validates the config with every flag in ``CONFIG_FLAGS`` applied, and calls the
    command with ``cfg`` first and its own options after; errors are handled as in
    ``handle_errors``. Put it below ``@click.command()`` and above the command's own options.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            flags = {k: kwargs.pop(k) for k in CONFIG_FLAGS if k in kwargs}
            cfg = load(kwargs.pop("config_dir"), kwargs.pop("env"), **flags)
            return func(cfg, *args, **kwargs)

        command: Any = handle_errors(wrapper)
        for group in reversed(groups):
            command = GROUPS[group](command)
        return base_options(command)

    return decorate


def handle_errors(func: F) -> F:
    """Turn our typed errors, and Ctrl-C or SIGTERM, into a one-line message and a non-zero
    exit, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StockpipeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            exit_interrupted(exc)
        except Exception as exc:
            # Tracking-server failures mid-run (MLflow raises its own types): say so plainly.
            code = exit_code_of(exc)
            if code is None:
                raise
            click.echo(
                f"error: tracking failed: {type(exc).__name__}: {exc}. If the server "
                "died, restart it and re-run with the same --study-name to resume "
                "the study.",
                err=True,
            )
            sys.exit(code)
        except BaseException as exc:
            # A Rust panic inside polars (a BaseException) on a damaged file we did not
            # guard: name it plainly instead of a traceback. Everything else goes on.
            if type(exc).__name__ != "PanicException":
                raise
            detail = (str(exc).strip().splitlines() or ["panic"])[0][:200]
            click.echo(
                f"error: a library failed while working on your data (polars panic: "
                f"{detail}). A file being read is probably corrupt: check or replace it",
                err=True,
            )
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def load(config_dir: Path, env: str | None, **overrides: Any) -> Any:
    """Validated config with CLI overrides applied."""
    # From the config edge itself, not the composition root: importing bootstrap here would
    # make every command pay for every adapter's imports before it runs.
    from pipeline.config import apply_overrides, load_config

    return apply_overrides(load_config(config_dir, env), **overrides)


def parquet_path(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Click callback of the flags that write parquet: refuse any other suffix (exit 2).

    The writers write parquet whatever the name says, so ``--output x.csv`` used to leave
    parquet bytes in a .csv file that every CSV reader then chokes on.
    """
    if value is not None and value.suffix.lower() != ".parquet":
        raise click.BadParameter(
            f"{value} does not end in .parquet: this command writes parquet only "
            f"(e.g. {value.with_suffix('.parquet').name})",
            ctx=ctx,
            param=param,
        )
    return value


def num(value: float | None, digits: int = 3) -> str:
    """Format a metric that may be undefined."""
    return "n/a" if value is None else f"{value:.{digits}f}"
