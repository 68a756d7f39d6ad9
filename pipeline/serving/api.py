"""Optional online service: the registered model behind a small FastAPI app.

``POST /predict`` takes recent daily bars (at least the model's warm-up rows per ticker) and
returns the prediction for each ticker's latest date, computed by the very pipeline that
`stockpipe score` uses, so online and batch predictions cannot drift apart. The bars meet the
same data contract as files (``pipeline.serving.bars``) and every request is bounded in size,
breadth, time and concurrency (``pipeline.serving.limits``, limits from ``serving.yaml``).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import polars as pl
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pipeline.data.inputs import short_tickers
from pipeline.data.validation import ContractPolicy
from pipeline.domain import LoadedModel, PredictionLog
from pipeline.serving.bars import SOURCE, parse_bars
from pipeline.serving.limits import PredictionSlots, read_body
from pipeline.serving.predict import (
    ModelFailureError,
    NonFinitePredictionError,
    latest_predictions,
    log_rows,
)
from pipeline.settings import ServingConfig

log = logging.getLogger(__name__)
MAX_MESSAGE = 500  # characters of a model's exception shown to the client


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


def predict_bars(
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


def create_app(
    model: LoadedModel,
    default_horizon: int = 1,
    serving: ServingConfig = ServingConfig(),  # noqa: B008 - frozen, so a shared default is safe
    policy: ContractPolicy | None = None,
    record: PredictionLog | None = None,
) -> FastAPI:
    """An app serving one loaded model (the composition root decides which), within ``serving``;
    with ``record`` every prediction served is logged."""
    app = FastAPI(title="stockpipe", version="1")
    slots = PredictionSlots(serving.max_concurrent_predictions)
    horizon = model.horizon or default_horizon

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        # A JSON message instead of the server's plain-text page; the log keeps the traceback.
        return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        # async and lock-free: it answers even while every prediction slot is busy.
        return {
            "status": "ok",
            "model": model.name,
            "version": model.version,
            "warmup_rows": model.warmup,
        }

    @app.post("/predict", response_model=list[Prediction])
    async def predict(request: Request) -> list[Prediction]:
        _require_json(request)
        timeout = serving.request_timeout_seconds
        body = await read_body(request, serving.max_body_bytes, timeout)

        def work() -> list[Prediction]:
            return predict_bars(model, parse_bars(body, serving, policy), horizon, record)

        return await slots.run(work, timeout)

    return app
