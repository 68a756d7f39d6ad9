"""`models list|promote|rollback`: the registry's versions and aliases (Staging/Production
map onto aliases such as `challenger`, `champion` and `production`)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from pipeline.cli.common import with_config

if TYPE_CHECKING:  # settings (pydantic) is imported when a command runs, not for --help
    from pipeline.settings import StockpipeConfig

KEY_TAGS = (
    "candidate",
    "primary_metric",
    "rmse",
    "n_trials",
    "promoted",
    "data_sha256",
    "git_commit",
)


@click.group()
def models() -> None:
    """Inspect and move registry aliases."""


horizon_option = click.option(
    "--horizon",
    type=int,
    default=None,
    help="The registered model of this configured horizon [default: the primary one].",
)


def _narrow(cfg: StockpipeConfig, horizon: int | None) -> StockpipeConfig:
    """The config of one horizon's registered model (several horizons: one model each)."""
    if horizon is None:
        return cfg
    if horizon not in cfg.horizons:
        raise click.BadParameter(
            f"horizon {horizon} is not configured (model.target.horizons: {list(cfg.horizons)})",
            param_hint="--horizon",
        )
    return cfg.for_horizon(horizon)


@models.command("list")
@with_config("tracking")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@horizon_option
def list_versions(cfg: StockpipeConfig, fmt: str, horizon: int | None) -> None:
    """Versions, aliases, key metrics and lineage tags."""
    from pipeline import bootstrap

    cfg = _narrow(cfg, horizon)
    registry = bootstrap.registry(cfg)
    # A registration killed before its alias moved is finished or abandoned (logged); a
    # promotion killed between the alias move and the tag leaves the champion untagged:
    # repair it so the `promoted` column agrees with the alias.
    registry.settle_pending()
    registry.reconcile(cfg.tracking.champion_alias)
    versions = registry.versions()
    if fmt == "json":
        click.echo(json.dumps(versions, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{cfg.tracking.registered_model} ({cfg.tracking_uri})")
    for col in ("version", "aliases", *KEY_TAGS, "registration"):
        table.add_column(col, no_wrap=True)
    for v in versions:
        tags = v["tags"]
        metric = tags.get("primary_metric", "rmse")
        row = [
            v["version"],
            ",".join(v["aliases"]),
            tags.get("candidate", ""),
            metric,
            tags.get(metric, ""),
            tags.get("n_trials", ""),
            tags.get("promoted", ""),
            tags.get("data_sha256", "")[:12],
            tags.get("git_commit", "")[:12],
            tags.get("stockpipe.registration", ""),  # pending / complete / abandoned
        ]
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@models.command()
@with_config("tracking")
@click.argument("version")
@click.option("--alias", default=None, help="Defaults to the champion alias.")
@horizon_option
def promote(cfg: StockpipeConfig, version: str, alias: str | None, horizon: int | None) -> None:
    """Point an alias (default: champion) at VERSION, by hand; recorded for rollback."""
    from pipeline import bootstrap

    cfg = _narrow(cfg, horizon)
    alias = alias or cfg.tracking.champion_alias
    bootstrap.registry(cfg).set_alias(alias, version, record=True)
    click.echo(f"{cfg.tracking.registered_model}@{alias} -> v{version}")


@models.command()
@with_config("tracking")
@click.option("--alias", default=None, help="Defaults to the champion alias.")
@horizon_option
def rollback(cfg: StockpipeConfig, alias: str | None, horizon: int | None) -> None:
    """Point the alias (default: champion) back at the version it had before."""
    from pipeline import bootstrap

    cfg = _narrow(cfg, horizon)
    alias = alias or cfg.tracking.champion_alias
    version = bootstrap.registry(cfg).rollback(alias)
    click.echo(f"{cfg.tracking.registered_model}@{alias} rolled back to v{version}")
