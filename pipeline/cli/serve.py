"""`serve`: the registered models (one per configured horizon) behind the HTTP service."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipeline.cli.common import model_uri_option, with_config
from pipeline.errors import StockpipeError

if TYPE_CHECKING:
    from pipeline.serving_app import ServeSpec
    from pipeline.settings import StockpipeConfig

# What the `serve` extra installs, by import name (pyproject.toml's optional-dependencies).
SERVE_MODULES = ("fastapi", "uvicorn", "prometheus_client")


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
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Server processes; predictions are CPU-bound, so up to one per core.",
)
def serve(
    cfg: StockpipeConfig,
    model_uri: str | None,
    host: str,
    port: int,
    reload_interval: float | None,
    workers: int,
) -> None:
    """Serve the registered models over HTTP; needs the `serve` extra.

    POST /predict, GET /health, /ready, /model and /metrics. Every configured horizon's
    champion is served (one prediction per ticker and horizon), or only --model-uri. The
    models load in the background (/ready turns 200 once all have); each one serving an alias
    follows it: a promotion is picked up within the reload interval, without a restart and
    without a failed request. With --workers N, N processes share the port, each with its own
    models (each follows the alias on its own), each writing the prediction log itself.
    """
    require_serving_extra()
    import uvicorn

    from pipeline.serving_app import FACTORY, build_app

    # log_config=None: uvicorn's records go through our handler (JSON with --log-json); its
    # access log is replaced by the service's own request log (request id, latency, version).
    options: dict[str, Any] = {"host": host, "port": port, "log_config": None, "access_log": False}
    if workers == 1:
        uvicorn.run(build_app(cfg, model_uri, reload_interval), **options)
        return
    # Worker processes are spawned: they rebuild the app from the command's arguments, found
    # in the environment (the config itself is read again, as this process did). Each writes
    # the prediction log (SQLite in WAL mode: concurrent writers take turns for milliseconds).
    os.environ.update(_spec(model_uri, reload_interval).to_env())
    uvicorn.run(FACTORY, factory=True, workers=workers, **options)


def require_serving_extra() -> None:
    """Exit 2 with one line naming the missing module when the `serve` extra is not installed.

    Checked up front: the app's modules are imported lazily (by ``build_app``, in each worker),
    so a missing one would otherwise surface as a traceback from deep inside uvicorn's start.
    """
    for name in SERVE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = exc.name or name  # a dependency of the extra's own, possibly
            raise StockpipeError(
                f"`stockpipe serve` needs the serving extra (no module named {missing!r}): "
                'pip install -e ".[serve]"'
            ) from exc


def _spec(model_uri: str | None, reload_interval: float | None) -> ServeSpec:
    """The command's arguments (and the root group's logging flags) as a ``ServeSpec``."""
    from pipeline.serving_app import ServeSpec

    ctx = click.get_current_context()
    params, root = ctx.params, ctx.find_root().params
    return ServeSpec(
        config_dir=str(Path(params["config_dir"]).resolve()),
        env=params.get("env"),
        tracking_uri=params.get("tracking_uri"),
        model_uri=model_uri,
        reload_interval=reload_interval,
        log_level=str(root.get("log_level") or "INFO").upper(),
        log_json=bool(root.get("log_json")),
    )
