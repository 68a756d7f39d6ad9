"""The service's read-only endpoints: liveness, readiness, the served model, its metrics.

All are async and lock-free, so they answer at once even while every prediction slot is busy
or a model is loading in the background.

* ``GET /health``: liveness, 200 whenever the process runs.
* ``GET /ready``: 200 once a model is loaded, 503 before (a load balancer sends no traffic).
* ``GET /model``: what is served: name, version, alias, run, horizon, warm-up, features,
  benchmark and the registry's lineage tags.
* ``GET /metrics``: Prometheus text (``pipeline.serving.metrics``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, Response

from pipeline.serving.holder import ModelHolder, Served
from pipeline.serving.metrics import ServiceMetrics
from pipeline.serving.reload import ModelFollower


def describe(served: Served, default_horizon: int) -> dict[str, Any]:
    """The body of ``GET /model``."""
    model = served.model
    return {
        "name": model.name,
        "version": model.version,
        "alias": served.alias,
        "run_id": model.run_id,
        "horizon": model.horizon or default_horizon,
        "warmup_rows": model.warmup,
        "features": list(served.features),
        "benchmark": model.benchmark,
        "tags": dict(model.tags),
        "uri": served.uri,
        "loaded_at": dt.datetime.fromtimestamp(served.loaded_at, dt.UTC).isoformat(),
    }


def probe_routes(
    holder: ModelHolder,
    follower: ModelFollower | None,
    metrics: ServiceMetrics,
    default_horizon: int,
) -> APIRouter:
    """The read-only endpoints over ``holder`` (and ``follower``, which loads into it)."""
    router = APIRouter()

    def loading() -> HTTPException:
        if follower is not None:
            follower.start()  # a server run without lifespan events starts loading here
        detail = "model not loaded yet"
        if holder.last_error:
            detail += f"; last attempt failed: {holder.last_error}"
        return HTTPException(503, detail, headers={"Retry-After": "1"})

    @router.get("/health")
    async def health() -> dict[str, Any]:
        served = holder.current
        model = served.model if served else None
        return {
            "status": "ok",
            "ready": served is not None,
            "model": model.name if model else None,
            "version": model.version if model else None,
            "warmup_rows": model.warmup if model else None,
        }

    @router.get("/ready")
    async def ready() -> JSONResponse:
        served = holder.current
        if served is None:
            error = loading()
            return JSONResponse(
                {"status": "loading", "detail": error.detail}, 503, headers=error.headers
            )
        return JSONResponse({"status": "ready", "version": served.model.version})

    @router.get("/model")
    async def model() -> dict[str, Any]:
        served = holder.current
        if served is None:
            raise loading()
        return describe(served, default_horizon)

    @router.get("/metrics")
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return router
