"""`serve`: the registered model behind the HTTP service."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from pipeline.cli.common import model_uri_option, with_config

if TYPE_CHECKING:
    from pipeline.settings import StockpipeConfig


@click.command()
@with_config("tracking")
@model_uri_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
def serve(cfg: StockpipeConfig, model_uri: str | None, host: str, port: int) -> None:
    """Serve the registered model over HTTP (POST /predict); needs the `serve` extra."""
    try:
        import uvicorn

        from pipeline.serving.api import create_app
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise click.ClickException(
            "install the serving extra: pip install 'stockpipe[serve]'"
        ) from exc
    from pipeline import bootstrap

    model = bootstrap.loader(cfg).load(model_uri or cfg.tracking.champion_uri)
    # The same contract policy as files: one set of rules for every input.
    policy = bootstrap.contract_policy(cfg)
    # Every prediction served is logged in the warehouse's prediction log (source api).
    app = create_app(model, cfg.model.target.horizon, cfg.serving, policy, bootstrap.store(cfg))
    uvicorn.run(app, host=host, port=port)
