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

import numpy as np
import polars as pl
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pipeline.data.validation import ContractPolicy
from pipeline.serving.bars import SOURCE, parse_bars
from pipeline.serving.limits import PredictionSlots, read_body
from pipeline.serving.score import LoadedModel
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
    counts = frame.group_by("ticker").len().sort("ticker")
    short = counts.filter(pl.col("len") < model.warmup + 1)
    if short.height:
        raise HTTPException(
            422, f"need at least {model.warmup + 1} bars per ticker; got {dict(short.iter_rows())}"
        )
    return frame


def _apply(model: LoadedModel, frame: pl.DataFrame) -> np.ndarray[Any, Any]:
    """The model's predictions, any failure of it reported as a clean 500 (logged in full)."""
    try:
        preds = np.asarray(model.predictor.predict(frame.drop("row").to_pandas()), dtype=float)
    except Exception as exc:
        log.exception("model %s v%s failed to predict", model.name, model.version)
        message = f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE]
        raise HTTPException(
            500, f"model {model.name} v{model.version} failed to predict: {message}"
        ) from exc
    preds = preds.ravel()
    if preds.shape != (frame.height,):
        raise HTTPException(500, f"model returned {preds.size} predictions for {frame.height} bars")
    return preds


def predict_bars(model: LoadedModel, frame: pl.DataFrame, horizon: int) -> list[Prediction]:
    """One prediction per ticker, as of its latest bar (``frame`` is sorted by ticker, date)."""
    frame = _model_frame(model, frame)
    last = (
        frame.with_columns(pl.Series("prediction", _apply(model, frame)))
        .group_by("ticker", maintain_order=True)
        .last()
    )
    bad = last.filter(~pl.col("prediction").is_finite())
    if bad.height:  # JSON cannot carry them, and they mean the bars are beyond the model
        raise HTTPException(
            422,
            f"{SOURCE}: the model's prediction is not finite for ticker(s) "
            f"{bad['ticker'].to_list()}; the bars are outside the range it can handle",
        )
    return [
        Prediction(
            ticker=t,
            as_of_date=d,
            horizon=horizon,
            prediction=p,
            model_name=model.name,
            model_version=model.version,
        )
        for t, d, p in last.select("ticker", "date", "prediction").iter_rows()
    ]


def _require_json(request: Request) -> None:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media.lower() != "application/json" and not media.lower().endswith("+json"):
        raise HTTPException(415, f"content-type must be application/json, not {media!r}")


def create_app(
    model: LoadedModel,
    default_horizon: int = 1,
    serving: ServingConfig = ServingConfig(),  # noqa: B008 - frozen, so a shared default is safe
    policy: ContractPolicy | None = None,
) -> FastAPI:
    """An app serving one loaded model (the composition root decides which), within ``serving``."""
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
            return predict_bars(model, parse_bars(body, serving, policy), horizon)

        return await slots.run(work, timeout)

    return app
