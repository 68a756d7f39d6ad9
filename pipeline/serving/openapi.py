"""What the OpenAPI document (``GET /openapi.json``, ``/docs``) says about the service.

``POST /predict`` reads its body itself (``pipeline.serving.limits.read_body`` bounds it while
it streams in), so FastAPI sees no body parameter and would document none. The body is
published here instead: ``request_body`` points the operation at ``PredictRequest``, and
``publish`` adds that model (and ``Bar``) to the document's components. Every error status a
route really answers is listed with ``errors`` and the one body all errors share,
``ErrorBody``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/{model}"
NO_REASONS: Mapping[int, str] = {}
LOADING = "A model is still loading (the detail names the horizons); see Retry-After."

# Why each status is returned; a route lists those it can answer.
REASONS: dict[int, str] = {
    400: "The body is not JSON, or Content-Length is not a number.",
    401: "Authentication is on (serving.api_token_env) and the bearer token is missing or wrong.",
    408: "The body did not arrive within serving.request_timeout_seconds.",
    413: "The body is larger than serving.max_body_bytes.",
    415: "The content type is not application/json.",
    422: "The bars are malformed or break a rule: the data contract (located at bars[i]), the "
    "ticker rule, serving.max_tickers, serving.max_bars_per_ticker, too short a history for "
    "the model's warm-up, or a missing bench_close; or the model's output is not finite.",
    500: "The model failed to predict.",
    503: "Busy (serving.max_concurrent_predictions), a model still loading, or the prediction "
    "log unavailable; retry after the Retry-After header's seconds.",
    504: "The prediction took longer than serving.request_timeout_seconds.",
}


class ErrorBody(BaseModel):
    """The body of every error response: what went wrong, in words."""

    detail: str


def errors(*statuses: int, why: Mapping[int, str] = NO_REASONS) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route answering these error statuses (all with ``ErrorBody``),
    described by ``why`` or else ``REASONS``."""
    return {
        status: {"model": ErrorBody, "description": why.get(status, REASONS[status])}
        for status in statuses
    }


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as a route's required JSON body (see ``publish``)."""
    schema = {"$ref": REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def publish(app: FastAPI, *models: type[BaseModel]) -> None:
    """Add ``models`` (and the models they use) to ``app``'s OpenAPI components, once, when the
    document is first built."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()  # FastAPI's own, which caches it in app.openapi_schema
            _, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(defs.get("$defs", {}))
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way
