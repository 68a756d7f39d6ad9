"""`serve`: the registered models (one per configured horizon) behind the HTTP service."""

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
@click.option(
    "--reload-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds between registry polls when serving an alias "
    "[default: serving.yaml reload_interval_seconds, 30].",
)
def serve(
    cfg: StockpipeConfig,
    model_uri: str | None,
    host: str,
    port: int,
    reload_interval: float | None,
) -> None:
    """Serve the registered models over HTTP; needs the `serve` extra.

    POST /predict, GET /health, /ready, /model and /metrics. Every configured horizon's
    champion is served (one prediction per ticker and horizon), or only --model-uri. The
    models load in the background (/ready turns 200 once all have); each one serving an alias
    follows it: a promotion is picked up within the reload interval, without a restart and
    without a failed request.
    """
    try:
        import uvicorn

        from pipeline.serving.api import create_app
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise click.ClickException(
            "install the serving extra: pip install 'stockpipe[serve]'"
        ) from exc
    from pipeline import bootstrap

    # One follower per horizon; each model's horizon is its version's tag, else the one it
    # was configured for (the primary horizon for --model-uri).
    followers = bootstrap.model_followers(cfg, model_uri, reload_interval)
    # The same contract policy as files: one set of rules for every input.
    policy = bootstrap.contract_policy(cfg)
    # Every prediction served is logged in the warehouse's prediction log (source api).
    app = create_app(followers, cfg.model.target.horizon, cfg.serving, policy, bootstrap.store(cfg))
    # log_config=None: uvicorn's records go through our handler (JSON with --log-json); its
    # access log is replaced by the service's own request log (request id, latency, version).
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
