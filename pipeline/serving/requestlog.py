"""One structured log line and one metrics observation per request, and its request id.

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware, which would sit between the
endpoint and the streamed body that ``read_body`` bounds). Each request gets an id: the
caller's ``X-Request-ID`` when it is a sane token, else a fresh uuid4 hex; it is returned in the
response's ``X-Request-ID`` header and logged with the method, path, status, latency, the model
version that answered (``"3"``; serving several horizons, every one's: ``"h1=3,h5=2,h20=2"``)
and, for ``/predict``, the ticker count. Endpoints add those last two to ``scope["state"]``
(``request.state``). With ``--log-json`` they are fields of the JSON line. Given a
``RequestSink``, the same fields (the matched route instead of the raw path) are handed to it
as a ``RequestRecord`` for the request log `monitor` reads (``pipeline.serving.requeststore``).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.serving.holder import Slots
from pipeline.serving.metrics import OTHER, ServiceMetrics
from pipeline.serving.requeststore import RequestRecord, RequestSink

log = logging.getLogger("pipeline.serving.requests")
HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# Probes and scrapes arrive every few seconds (and /ready is 503 all through a model's first
# load, by design): logged at DEBUG so they do not drown the rest.
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})


def request_id(scope: Scope) -> str:
    """The caller's X-Request-ID when it is a short token, else a new uuid4 hex."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _SANE_ID.fullmatch(text):
                return text
    return uuid.uuid4().hex


def _endpoint(scope: Scope) -> str:
    """The matched route's path (``/predict``), never the raw path: bounded label values."""
    route = scope.get("route")
    return str(getattr(route, "path", OTHER)) if route is not None else OTHER


def _record(endpoint: str, seconds: float, fields: dict[str, Any]) -> RequestRecord:
    """The request log's row of one request (``fields``: those of its log line)."""
    return RequestRecord(
        at=time.time() - seconds,  # when it arrived
        endpoint=endpoint,
        method=fields["method"],
        status=fields["status"],
        latency_ms=seconds * 1000,
        request_id=fields["request_id"],
        model_version=fields["model_version"],
        tickers=fields["tickers"],
    )


class RequestLog:
    """ASGI middleware: request id, one log line, the request metrics and (given
    ``requests``) a request-log record for every request."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ServiceMetrics,
        slots: Slots,
        requests: RequestSink | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.slots = slots
        self.requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = request_id(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = rid
        status = [500]  # what the client gets if the app raises: the server's 500 page

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                MutableHeaders(scope=message).append(HEADER, rid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._finish(scope, state, status[0], time.perf_counter() - start)

    def _finish(self, scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
        endpoint = _endpoint(scope)
        self.metrics.observe(endpoint, scope["method"], status, seconds)
        # What answered a prediction, else what is serving now (for the probes' lines).
        if "model_version" in state:
            version = state["model_version"]
        else:
            version = self.slots.versions(self.slots.peek())
        fields = {
            "request_id": state["request_id"],
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
            "model_version": version,
            "tickers": state.get("tickers"),
        }
        if self.requests is not None:  # queued only: written by the sink's own thread
            self.requests.add(_record(endpoint, seconds, fields))
        level = logging.DEBUG if scope["path"] in QUIET_PATHS else logging.INFO
        log.log(
            level,
            "%s %s %d %.1f ms (%s%s, request %s)",
            scope["method"],
            scope["path"],
            status,
            seconds * 1000,
            "models " if self.slots.several else "model v",  # models h1=3,h5=2 / model v3
            version,
            state["request_id"],
            extra=fields,
        )
