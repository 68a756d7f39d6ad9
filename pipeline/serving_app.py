"""How `stockpipe serve` builds its app, in the serving process or in each worker process.

Beside the composition root (``bootstrap``): a worker process starts here, so this is where
it maps its config to adapters; no serving module imports it. Imported by `serve` only once
the `serve` extra is checked, so fastapi stays off every other command's start-up.

With ``--workers 1`` the command builds the app itself and hands it to uvicorn. With
``--workers N`` uvicorn starts N processes (spawned, so nothing is inherited but the
environment) and each needs an import string: ``create_from_env`` (``factory=True``) reads the
command's arguments back from one environment variable (a ``ServeSpec`` as JSON) and rebuilds
the same config and followers that the command would have built. Each worker follows (and
hot-reloads) its models on its own and writes its predictions to the prediction log itself:
the log is a SQLite file in WAL mode (``pipeline.data.predlog``), which takes writers from
many processes, and the service never opens the DuckDB warehouse.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from pipeline import bootstrap
from pipeline.config import apply_overrides, load_config
from pipeline.data.predlog import SQLiteLog
from pipeline.domain import PredictionLog
from pipeline.logging_setup import setup_logging
from pipeline.serving.api import create_app
from pipeline.serving.requeststore import RequestSink
from pipeline.settings import StockpipeConfig

ENV_VAR = "STOCKPIPE_SERVE_SPEC"
FACTORY = f"{__name__}:create_from_env"  # uvicorn's import string for the worker processes


@dataclass(frozen=True)
class ServeSpec:
    """Everything a worker needs to rebuild what `serve` serves: the command's arguments."""

    config_dir: str
    env: str | None = None
    tracking_uri: str | None = None  # --tracking-uri
    model_uri: str | None = None
    reload_interval: float | None = None
    log_level: str = "INFO"
    log_json: bool = False

    def to_env(self) -> dict[str, str]:
        """The environment variable that carries this spec to the worker processes."""
        return {ENV_VAR: json.dumps(asdict(self), sort_keys=True)}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServeSpec:
        """The spec `serve` put in the environment; a clear error when there is none."""
        raw = environ.get(ENV_VAR)
        if not raw:
            raise RuntimeError(f"{ENV_VAR} is not set: start workers with `stockpipe serve`")
        doc: dict[str, Any] = json.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})

    def config(self) -> StockpipeConfig:
        """The config as the command loaded it: files, --env overlay and the flags."""
        cfg = load_config(Path(self.config_dir), self.env)
        return apply_overrides(cfg, tracking_uri=self.tracking_uri)


def prediction_log(cfg: StockpipeConfig) -> SQLiteLog:
    """The configured warehouse's prediction log (its own SQLite file beside it), written
    directly by every serving process."""
    return bootstrap.store(cfg).log


def build_app(
    cfg: StockpipeConfig,
    model_uri: str | None = None,
    reload_interval: float | None = None,
    log: PredictionLog | None = None,
    requests: RequestSink | None = None,
) -> FastAPI:
    """The app `serve` runs: one follower per horizon (or only ``model_uri``), the files'
    contract policy, every prediction logged (in ``log``, else in the warehouse's prediction
    log) and every request (in ``requests``, else in the request log beside it)."""
    # One follower per horizon; each model's horizon is its version's tag, else the one it
    # was configured for (the primary horizon for --model-uri).
    followers = bootstrap.model_followers(cfg, model_uri, reload_interval)
    # The same contract policy as files: one set of rules for every input.
    policy = bootstrap.contract_policy(cfg)
    # Every prediction served is logged (source api) before it is answered.
    record = log if log is not None else prediction_log(cfg)
    # Every request, probes included, is queued for the request log `monitor` reads.
    sink = requests if requests is not None else bootstrap.request_writer(cfg)
    return create_app(followers, cfg.model.target.horizon, cfg.serving, policy, record, sink)


def create_from_env() -> FastAPI:
    """uvicorn's app factory in each worker process: logging as the command set it, then
    the app built from the ``ServeSpec`` in the environment."""
    spec = ServeSpec.from_env()
    setup_logging(spec.log_level, json_lines=spec.log_json)
    return build_app(spec.config(), spec.model_uri, spec.reload_interval)
