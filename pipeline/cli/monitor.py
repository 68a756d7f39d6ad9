"""`monitor`: drift, live performance and service health of the served model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from pipeline.cli.common import model_uri_option, with_config

if TYPE_CHECKING:
    from pipeline.settings import StockpipeConfig


@click.command()
@with_config("data", "tracking")
@model_uri_option
def monitor(cfg: StockpipeConfig, model_uri: str | None) -> None:
    """PLACEHOLDER being written (issue 12 part 5)."""
    raise click.ClickException("monitor is not built yet")
