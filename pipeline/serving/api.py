"""Optional online service: the registered models behind a small FastAPI app.

``POST /predict`` takes recent daily bars (at least the longest warm-up plus one row per
ticker) and returns, for each ticker's latest date, one prediction per horizon served,
computed by the very pipeline that `stockpipe score` uses, so online and batch predictions
cannot drift apart. The bars meet the same data contract as files (``pipeline.serving.bars``)
and every request is bounded in size, breadth, time and concurrency
(``pipeline.serving.limits``, limits from ``serving.yaml``).

A model is either fixed (a ``LoadedModel``) or followed: a ``ModelFollower`` loads it in the
background once the server is up and, for an alias, swaps in each new version
(``pipeline.serving.reload``). `stockpipe serve` follows one model per configured horizon, each
in its own slot (``pipeline.serving.holder``). Every request captures every horizon's model
once and uses them to the end.
The read-only endpoints are in ``pipeline.serving.probes``; the request log and metrics in
``pipeline.serving.requestlog`` and ``pipeline.serving.metrics``; the optional bearer token in
``pipeline.serving.auth``; what the OpenAPI document says in ``pipeline.serving.openapi``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import polars as pl
from fastapi import FastAPI, HTTPException, Request
from fastapi.params import Depends as Dependency
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from pipeline.data.inputs import short_tickers
from pipeline.data.validation import ContractPolicy
from pipeline.domain import LoadedModel, PredictionLog
from pipeline.serving.auth import api_token, guard
from pipeline.serving.bars import SOURCE, Bars, PredictRequest, parse_bars
from pipeline.serving.holder import ModelHolder, Served, Slot, Slots
from pipeline.serving.limits import PredictionSlots, read_body
from pipeline.serving.metrics import ServiceMetrics
from pipeline.serving.openapi import errors, publish, request_body
from pipeline.serving.predict import (
    ModelFailureError,
    NonFinitePredictionError,
    latest_predictions,
    log_rows,
)
from pipeline.serving.probes import probe_routes, waiting_for
from pipeline.serving.reload import ModelFollower
from pipeline.serving.requestlog import RequestLog
from pipeline.serving.requeststore import RequestSink
from pipeline.serving.score import model_bars
from pipeline.settings import ServingConfig

log = logging.getLogger(__name__)
MAX_MESSAGE = 500  # characters of a model's exception shown to the client
WAIT_STEP = 0.05  # seconds between looks at the holders while the first models load
# What an app serves: a loaded model, a follower, or one follower per horizon (primary first).
Servable = LoadedModel | ModelFollower | Mapping[int, ModelFollower]


class Prediction(BaseModel):
    """The prediction of one horizon for one ticker, as of the ticker's latest bar.

    A model registered with an interval calibration adds the bounds of its prediction
    intervals: ``lower_80, upper_80, lower_95, upper_95`` (``lower_<level>``/``upper_<level>``
    for any other level: kept as extra fields). A response from models without one has no
    bound fields at all; null is a bound its model cannot give for that row.
    """

    model_config = ConfigDict(extra="allow")  # the bounds of levels other than 80 and 95

    ticker: str
    as_of_date: dt.date
    horizon: int
    prediction: float
    model_name: str | None
    model_version: str | None
    lower_80: float | None = None
    upper_80: float | None = None
    lower_95: float | None = None
    upper_95: float | None = None
    warnings: list[str] = Field(
        default_factory=list,
        description="the data contract's warnings about this ticker's bars (a suspicious "
        "price move, a gap): the prediction is served, but its input looks doubtful",
    )


def _check_bars(models: Sequence[LoadedModel], frame: pl.DataFrame) -> None:
    """Refuse (422) bars a model cannot read: no benchmark it needs, or too short a history
    for the longest warm-up (the same rule as `score`)."""
    benchmarks = sorted({m.benchmark for m in models if m.benchmark is not None})
    if benchmarks and frame["bench_close"].is_null().all():
        raise HTTPException(422, f"model needs bench_close ({', '.join(benchmarks)}) on every bar")
    # Bars may leave out open/high/low/volume (close-only data): fine unless a model reads them.
    reads = {str(c) for m in models for c in getattr(m.feature_step, "feature_names_in_", ())}
    lacking = [c for c in ("open", "high", "low", "volume") if c in reads]
    lacking = [c for c in lacking if frame[c].is_null().all()]
    if lacking:
        raise HTTPException(422, f"model needs {', '.join(lacking)} on every bar")
    need = max(m.warmup for m in models) + 1
    short = short_tickers(frame, need)
    if short:
        raise HTTPException(422, f"need at least {need} bars per ticker; got {short}")


def _predict(model: LoadedModel, frame: pl.DataFrame, horizon: int) -> pl.DataFrame:
    """``model``'s prediction per ticker; a model's failure as the HTTP error it deserves."""
    uri = f"{model.name} v{model.version}"
    try:
        return latest_predictions(model, model_bars(model, frame), horizon, uri)
    except NonFinitePredictionError as exc:  # JSON cannot carry it, and the bars are to blame
        raise HTTPException(422, f"{SOURCE}: {exc}") from exc
    except ModelFailureError as exc:
        log.exception("model %s failed to predict", uri)
        raise HTTPException(500, str(exc)[:MAX_MESSAGE]) from exc


def serve_bars(
    models: Sequence[tuple[LoadedModel, int]],
    bars: Bars,
    record: PredictionLog | None = None,
) -> list[Prediction]:
    """One prediction per ticker and horizon, as of each ticker's latest bar, sorted by ticker
    then horizon (``bars.frame`` is sorted by ticker, date; ``models`` pairs each model with
    the horizon it predicts), each with the contract's warnings about its ticker's bars.

    With ``record``, every model's predictions are logged (source ``api``) in one batch before
    any is returned: a prediction that cannot be logged is not served (503), so the log misses
    none, and a request's horizons are logged all together or not at all.
    """
    _check_bars([model for model, _ in models], bars.frame)
    frame = bars.frame.drop("row")
    outs = [_predict(model, frame, horizon) for model, horizon in models]
    if record is not None:
        pairs = zip(outs, models, strict=True)
        _record(record, pl.concat([log_rows(out, model, "api") for out, (model, _) in pairs]))
    # Diagonal: a model without intervals gets null bounds beside one with them.
    out = pl.concat(outs, how="diagonal_relaxed").sort("ticker", "horizon", maintain_order=True)
    # Set on every row (response_model_exclude_unset would drop a default): always present.
    return [
        Prediction(**row, warnings=bars.warnings.get(row["ticker"], []))
        for row in out.iter_rows(named=True)
    ]


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


async def _await_models(slots: Slots, timeout: float) -> list[Served]:
    """Every horizon's served model, captured once; a request arriving while they load waits
    for them (up to ``timeout`` seconds, then 503) instead of failing at once."""
    served = slots.capture()
    if served is not None:
        return served
    slots.start()  # a server run without lifespan events starts loading here
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (served := slots.capture()) is None and loop.time() < deadline:
        await asyncio.sleep(WAIT_STEP)  # polling keeps the loop free and costs no thread
    if served is None:
        detail = f"{waiting_for(slots)}; see GET /ready"
        raise HTTPException(503, detail, {"Retry-After": "1"})
    return served


def _lifespan(
    followers: Sequence[ModelFollower], requests: RequestSink | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start following the models when the server starts; stop when it stops, and write
    the request log's queued rows."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for follower in followers:
            follower.start()
        try:
            yield
        finally:
            for follower in followers:
                follower.stop()
            if requests is not None:
                await asyncio.to_thread(requests.close)

    return lifespan


def _slots(model: Servable, default_horizon: int) -> tuple[Slots, list[ModelFollower]]:
    """One slot per model served, and the followers that load into them."""
    if isinstance(model, LoadedModel):
        holder = ModelHolder(Served.of(model))
        return Slots([Slot(default_horizon, holder, model.name or "")]), []
    by_horizon = {default_horizon: model} if isinstance(model, ModelFollower) else dict(model)
    followers = list(by_horizon.values())

    def start() -> None:
        for follower in followers:
            follower.start()  # once each; later calls do nothing

    slots = [Slot(h, f.holder, f.name) for h, f in by_horizon.items()]
    return Slots(slots, start), followers


def create_app(
    model: Servable,
    default_horizon: int = 1,
    serving: ServingConfig = ServingConfig(),  # noqa: B008 - frozen, so a shared default is safe
    policy: ContractPolicy | None = None,
    record: PredictionLog | None = None,
    requests: RequestSink | None = None,
) -> FastAPI:
    """An app serving ``model`` within ``serving``: a loaded model as it is, a follower's
    (loaded in the background, hot-reloaded), or one follower per horizon (``{horizon:
    follower}``, primary first), each reloaded on its own; with ``record`` every prediction is
    logged before it is returned, and with ``requests`` every request is handed to it (the
    request log). ``default_horizon`` is a single model's horizon when its version has no
    tag. When the environment variable ``serving.api_token_env`` names is set, ``/predict``,
    ``/model`` and ``/metrics`` need it as a bearer token."""
    slots, followers = _slots(model, default_horizon)
    metrics = ServiceMetrics(slots)
    app = FastAPI(title="stockpipe", version="1", lifespan=_lifespan(followers, requests))
    app.add_middleware(RequestLog, metrics=metrics, slots=slots, requests=requests)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        # A JSON message instead of the server's plain-text page; the log keeps the traceback.
        return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)

    auth = guard(api_token(serving), serving.api_token_env)
    app.include_router(probe_routes(slots, metrics, auth))
    _predict_route(app, slots, metrics, serving, policy, record, auth)
    publish(app, PredictRequest)
    return app


def _predict_route(
    app: FastAPI,
    slots: Slots,
    metrics: ServiceMetrics,
    serving: ServingConfig,
    policy: ContractPolicy | None,
    writer: PredictionLog | None,
    auth: list[Dependency],
) -> None:
    """``POST /predict`` on ``app``, bounded by ``serving`` and guarded by ``auth``."""
    limit = PredictionSlots(serving.max_concurrent_predictions)
    statuses = [400, *([401] if auth else []), 408, 413, 415, 422, 500, 503, 504]

    # The body is read by hand (bounded while it streams in), so its schema is declared here.
    # exclude_unset: a model without intervals answers without bound fields, not nulls.
    @app.post(
        "/predict",
        response_model=list[Prediction],
        response_model_exclude_unset=True,
        responses=errors(*statuses),
        openapi_extra=request_body(PredictRequest),
        dependencies=auth,
    )
    async def predict(request: Request) -> list[Prediction]:
        """Predictions per ticker and horizon, as of each ticker's latest bar."""
        _require_json(request)
        timeout = serving.request_timeout_seconds
        # This request's models to the end, whatever is swapped in meanwhile.
        served = await _await_models(slots, timeout)
        request.state.model_version = slots.versions(served)
        models = [(s.model, slot.horizon_of(s)) for slot, s in zip(slots, served, strict=True)]
        body = await read_body(request, serving.max_body_bytes, timeout)

        def work() -> list[Prediction]:
            bars = parse_bars(body, serving, policy)
            request.state.tickers = bars.frame["ticker"].n_unique()
            return serve_bars(models, bars, writer)

        out = await limit.run(work, timeout)
        for slot, s in zip(slots, served, strict=True):  # one prediction per ticker each
            metrics.served(slot, s.model.version, request.state.tickers)
        return out
