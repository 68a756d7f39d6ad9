"""Optional online service: the registered model behind a small FastAPI app.

``POST /predict`` takes recent daily bars (at least the model's warm-up rows per ticker) and
returns the prediction for each ticker's latest date, computed by the very pipeline that
`stockpipe score` uses, so online and batch predictions cannot drift apart. The bars meet the
same data contract as files (``pipeline.serving.bars``) and every request is bounded in size,
breadth, time and concurrency (``pipeline.serving.limits``, limits from ``serving.yaml``).

The model is either fixed (a ``LoadedModel``) or followed: a ``ModelFollower`` loads it in the
background once the server is up and, for an alias, swaps in each new version
(``pipeline.serving.reload``). Every request captures the model once and uses it to the end.
The read-only endpoints are in ``pipeline.serving.probes``; the request log and metrics in
``pipeline.serving.requestlog`` and ``pipeline.serving.metrics``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import polars as pl
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pipeline.data.inputs import short_tickers
from pipeline.data.validation import ContractPolicy
from pipeline.domain import LoadedModel, PredictionLog
from pipeline.serving.bars import SOURCE, parse_bars
from pipeline.serving.holder import ModelHolder, Served
from pipeline.serving.limits import PredictionSlots, read_body
from pipeline.serving.metrics import ServiceMetrics
from pipeline.serving.predict import (
    ModelFailureError,
    NonFinitePredictionError,
    latest_predictions,
    log_rows,
)
from pipeline.serving.probes import probe_routes
from pipeline.serving.reload import ModelFollower
from pipeline.serving.requestlog import RequestLog
from pipeline.settings import ServingConfig

log = logging.getLogger(__name__)
MAX_MESSAGE = 500  # characters of a model's exception shown to the client
WAIT_STEP = 0.05  # seconds between looks at the holder while the first model loads


class Prediction(BaseModel):
    """The prediction for one ticker as of its latest bar."""

    ticker: str
    as_of_date: dt.date
    horizon: int
    prediction: float
    model_name: str | None
    model_version: str | None


def _model_frame(model: LoadedModel, frame: pl.DataFrame) -> pl.DataFrame:
    """The bars the model reads: enough history per ticker, bench_close only if it needs it."""
    if model.benchmark is None:
        frame = frame.drop("bench_close")
    elif frame["bench_close"].is_null().all():
        raise HTTPException(422, f"model needs bench_close ({model.benchmark}) on every bar")
    short = short_tickers(frame, model.warmup + 1)  # the same rule as `score`
    if short:
        raise HTTPException(422, f"need at least {model.warmup + 1} bars per ticker; got {short}")
    return frame


def serve_bars(
    model: LoadedModel, frame: pl.DataFrame, horizon: int, record: PredictionLog | None = None
) -> list[Prediction]:
    """One prediction per ticker, as of its latest bar (``frame`` is sorted by ticker, date).

    With ``record``, the predictions are logged (source ``api``) before they are returned: a
    prediction that cannot be logged is not served (503), so the log misses none.
    """
    frame = _model_frame(model, frame).drop("row")
    uri = f"{model.name} v{model.version}"
    try:
        out = latest_predictions(model, frame, horizon, uri)
    except NonFinitePredictionError as exc:  # JSON cannot carry it, and the bars are to blame
        raise HTTPException(422, f"{SOURCE}: {exc}") from exc
    except ModelFailureError as exc:
        log.exception("model %s failed to predict", uri)
        raise HTTPException(500, str(exc)[:MAX_MESSAGE]) from exc
    if record is not None:
        _record(record, log_rows(out, model, "api"))
    return [Prediction(**row) for row in out.iter_rows(named=True)]


class OneWriter:
    """The prediction log, written by one request at a time.

    Concurrent predictions would otherwise write concurrently, and DuckDB shares one database
    per file within a process: two requests' transactions conflict ("write-write conflict")
    and one of them would be refused with 503 although nothing is wrong.
    """

    def __init__(self, log: PredictionLog) -> None:
        self.log = log
        self._lock = threading.Lock()

    def record(self, frame: pl.DataFrame) -> int:
        with self._lock:
            return self.log.record(frame)


def _record(record: PredictionLog, rows: pl.DataFrame) -> None:
    try:
        record.record(rows)
    except Exception as exc:  # the warehouse locked for too long, a full disk, ...
        log.exception("prediction log unavailable")
        raise HTTPException(503, f"prediction log unavailable: {type(exc).__name__}") from exc


def _require_json(request: Request) -> None:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media.lower() != "application/json" and not media.lower().endswith("+json"):
        raise HTTPException(415, f"content-type must be application/json, not {media!r}")


async def _await_model(
    holder: ModelHolder, follower: ModelFollower | None, timeout: float
) -> Served:
    """The served model; a request arriving while the first one loads waits for it (up to
    ``timeout`` seconds, then 503) instead of failing at once."""
    served = holder.current
    if served is not None:
        return served
    if follower is not None:
        follower.start()  # a server run without lifespan events starts loading here
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (served := holder.current) is None and loop.time() < deadline:
        await asyncio.sleep(WAIT_STEP)  # polling keeps the loop free and costs no thread
    if served is None:
        raise HTTPException(503, "model not loaded yet; see GET /ready", {"Retry-After": "1"})
    return served


def _lifespan(
    follower: ModelFollower | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start following the model when the server starts, stop when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if follower is not None:
            follower.start()
        try:
            yield
        finally:
            if follower is not None:
                follower.stop()

    return lifespan


def create_app(
    model: LoadedModel | ModelFollower,
    default_horizon: int = 1,
    serving: ServingConfig = ServingConfig(),  # noqa: B008 - frozen, so a shared default is safe
    policy: ContractPolicy | None = None,
    record: PredictionLog | None = None,
) -> FastAPI:
    """An app serving ``model`` within ``serving``: a loaded model as it is, or a follower's
    (loaded in the background, hot-reloaded); with ``record`` every prediction is logged."""
    follower: ModelFollower | None = None
    if isinstance(model, ModelFollower):
        follower, holder = model, model.holder
    else:
        holder = ModelHolder(Served.of(model))
    metrics = ServiceMetrics(holder)
    record = OneWriter(record) if record is not None else None
    app = FastAPI(title="stockpipe", version="1", lifespan=_lifespan(follower))
    app.add_middleware(RequestLog, metrics=metrics, holder=holder)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        # A JSON message instead of the server's plain-text page; the log keeps the traceback.
        return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)

    app.include_router(probe_routes(holder, follower, metrics, default_horizon))
    slots = PredictionSlots(serving.max_concurrent_predictions)

    @app.post("/predict", response_model=list[Prediction])
    async def predict(request: Request) -> list[Prediction]:
        _require_json(request)
        timeout = serving.request_timeout_seconds
        served = await _await_model(holder, follower, timeout)
        loaded = served.model  # this request's model to the end, whatever is swapped in
        request.state.model_version = loaded.version
        body = await read_body(request, serving.max_body_bytes, timeout)

        def work() -> list[Prediction]:
            frame = parse_bars(body, serving, policy)
            request.state.tickers = frame["ticker"].n_unique()
            return serve_bars(loaded, frame, loaded.horizon or default_horizon, record)

        out = await slots.run(work, timeout)
        metrics.served(loaded.version, len(out))
        return out

    return app
