"""Command line: thin commands that load config, apply flags and call one use case.

Heavy libraries (mlflow, lightgbm, ...) are imported inside commands so ``--help`` stays fast:
each command imports the composition root (``bootstrap``, about a second of imports) and its
use case when it runs. At top level: only what ``--help`` loads anyway.
"""

from __future__ import annotations

import click

from pipeline.cli import cycle, data, inspection, models, monitor, predictions, run, serve
from pipeline.cli.interrupts import install_handlers  # already in: cli.common needs it


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
@click.option("--log-json", is_flag=True, help="Log JSON lines instead of text.")
@click.version_option(package_name="stockpipe")
def main(log_level: str, log_json: bool) -> None:
    """stockpipe: leak-proof, tracked prediction models on daily stock prices."""
    # Not for --help, which never gets here: ~6 ms of imports (measured -X importtime).
    from pipeline.logging_setup import setup_logging

    setup_logging(log_level.upper(), json_lines=log_json)
    install_handlers()


for command in (
    run.train,
    run.tune,
    run.worker,
    run.score,
    serve.serve,
    monitor.monitor,
    cycle.cycle,
    inspection.folds,
    inspection.features,
    inspection.backtest,
    models.models,
    data.fetch,
    data.validate,
    data.data,
    predictions.predictions,
):
    main.add_command(command)
# The brief's verbs are fetch, train, tune, predict and serve: `predict` is `score`.
main.add_command(run.score, name="predict")

__all__ = ["main"]
