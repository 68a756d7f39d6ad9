"""The service's read-only endpoints: liveness, readiness, the served models, their metrics.

All are async and lock-free, so they answer at once even while every prediction slot is busy
or a model is loading in the background. The service serves one model per configured horizon
(one in all for a single horizon or an explicit ``--model-uri``):

* ``GET /health``: liveness, 200 whenever the process runs.
* ``GET /ready``: 200 once every horizon's model is loaded, 503 before, naming the horizons
  still loading (a load balancer sends no traffic).
* ``GET /model``: what is served: name, version, alias, run, horizon, warm-up, features,
  benchmark, the registry's lineage tags and the interval calibration of the primary horizon's
  model, and the same for every horizon's in ``horizons``.
* ``GET /metrics``: Prometheus text (``pipeline.serving.metrics``), documented as
  ``text/plain``.

With a bearer token configured (``pipeline.serving.auth``), ``/model`` and ``/metrics`` need it
(they tell what runs and how it is used); ``/health`` and ``/ready`` never do: probes and load
balancers carry no secrets.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.params import Depends as Dependency
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from pipeline.serving.holder import Served, Slots
from pipeline.serving.metrics import ServiceMetrics
from pipeline.serving.openapi import LOADING, errors


def describe(served: Served, horizon: int) -> dict[str, Any]:
    """One model's description in ``GET /model`` (``horizon``: the one it predicts)."""
    model = served.model
    return {
        "name": model.name,
        "version": model.version,
        "alias": served.alias,
        "run_id": model.run_id,
        "horizon": horizon,
        "warmup_rows": model.warmup,
        "features": list(served.features),
        "benchmark": model.benchmark,
        "tags": dict(model.tags),
        # Parsed from the `intervals` tag: the bounds /predict puts around each prediction.
        "intervals": model.intervals.model_dump() if model.intervals is not None else None,
        "uri": served.uri,
        "loaded_at": dt.datetime.fromtimestamp(served.loaded_at, dt.UTC).isoformat(),
    }


def describe_all(slots: Slots, served: list[Served]) -> dict[str, Any]:
    """The body of ``GET /model``: the primary horizon's model, and every horizon's."""
    each = [describe(s, slot.horizon_of(s)) for slot, s in zip(slots, served, strict=True)]
    return {**each[0], "horizons": each}


def waiting_for(slots: Slots) -> str:
    """What is still loading: ``model not loaded yet`` (one model, as it always said), or the
    horizons whose models are not loaded yet."""
    if not slots.several:
        return "model not loaded yet"
    named = ", ".join(str(slot.horizon) for slot in slots.loading())
    return f"models not loaded yet for horizon(s) {named}"


def loading_detail(slots: Slots) -> str:
    """Why the service is not ready: which models are still loading, and the last errors."""
    waiting, detail = slots.loading(), waiting_for(slots)
    if not slots.several:
        error = waiting[0].holder.last_error if waiting else None
        return detail + (f"; last attempt failed: {error}" if error else "")
    for slot in waiting:
        if error := slot.holder.last_error:
            detail += f"; h{slot.horizon} ({slot.name}) last attempt failed: {error}"
    return detail


def not_ready(slots: Slots) -> HTTPException:
    """503 while any model is loading (and start loading, if nothing has yet)."""
    slots.start()  # a server run without lifespan events starts loading here
    return HTTPException(503, loading_detail(slots), headers={"Retry-After": "1"})


def probe_routes(
    slots: Slots, metrics: ServiceMetrics, auth: list[Dependency] | None = None
) -> APIRouter:
    """The read-only endpoints over the served ``slots`` (their followers load into them);
    ``auth`` guards ``/model`` and ``/metrics`` (``pipeline.serving.auth.guard``)."""
    router = APIRouter()
    auth = auth or []
    unauthorized = [401] if auth else []

    @router.get("/health")
    async def health() -> dict[str, Any]:
        served = slots.peek()
        ready = all(s is not None for s in served)
        primary = served[0].model if served[0] is not None else None
        return {
            "status": "ok",
            "ready": ready,
            "model": primary.name if primary else None,
            "version": slots.versions(served),
            # The bars a request needs per ticker, minus one: the longest warm-up served.
            "warmup_rows": max(s.model.warmup for s in served if s) if ready else None,
        }

    @router.get("/ready", responses=errors(503, why={503: LOADING}))
    async def ready() -> JSONResponse:
        served = slots.capture()
        if served is None:
            error = not_ready(slots)
            return JSONResponse(
                {"status": "loading", "detail": error.detail}, 503, headers=error.headers
            )
        return JSONResponse({"status": "ready", "version": slots.versions(served)})

    @router.get(
        "/model", responses=errors(*unauthorized, 503, why={503: LOADING}), dependencies=auth
    )
    async def model() -> dict[str, Any]:
        served = slots.capture()
        if served is None:
            raise not_ready(slots)
        return describe_all(slots, served)

    # PlainTextResponse documents text/plain; the body is Prometheus' text exposition format.
    @router.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={
            200: {"description": "Prometheus text exposition format"},
            **errors(*unauthorized),
        },
        dependencies=auth,
    )
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return router
