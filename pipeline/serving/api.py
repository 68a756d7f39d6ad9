"""Optional online service: the registered model behind a small FastAPI app.

``POST /predict`` takes recent daily bars (at least the model's warm-up rows per ticker) and
returns the prediction for each ticker's latest date, computed by the very pipeline that
`stockpipe score` uses, so online and batch predictions cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from pipeline.serving.score import LoadedModel


class Bar(BaseModel):
    ticker: str
    date: dt.date
    open: float = Field(gt=0)
    high: float = Field(gt=0)
    low: float = Field(gt=0)
    close: float = Field(gt=0)
    volume: float = Field(ge=0)
    bench_close: float | None = Field(None, gt=0)


class PredictRequest(BaseModel):
    bars: list[Bar] = Field(min_length=1)


class Prediction(BaseModel):
    ticker: str
    as_of_date: dt.date
    horizon: int
    prediction: float
    model_name: str | None
    model_version: str | None


def create_app(model: LoadedModel, default_horizon: int = 1) -> FastAPI:
    """An app serving one loaded model (the composition root decides which)."""
    app = FastAPI(title="stockpipe", version="1")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": model.name,
            "version": model.version,
            "warmup_rows": model.warmup,
        }

    @app.post("/predict", response_model=list[Prediction])
    def predict(request: PredictRequest) -> list[Prediction]:
        frame = pd.DataFrame([b.model_dump() for b in request.bars])
        if model.benchmark is None:
            frame = frame.drop(columns=["bench_close"])
        elif frame["bench_close"].isna().all():
            raise HTTPException(422, f"model needs bench_close ({model.benchmark}) on every bar")
        frame["date"] = pd.to_datetime(frame["date"])
        frame = frame.sort_values(["ticker", "date"]).reset_index(drop=True)
        short = frame.groupby("ticker").size()
        short = short[short < model.warmup + 1]
        if len(short):
            raise HTTPException(
                422, f"need at least {model.warmup + 1} bars per ticker; got {short.to_dict()}"
            )
        preds = np.asarray(model.predictor.predict(frame), dtype=float).ravel()
        frame["prediction"] = preds
        last = frame.groupby("ticker").tail(1)
        horizon = model.horizon or default_horizon
        return [
            Prediction(
                ticker=str(t),
                as_of_date=pd.Timestamp(d).date(),
                horizon=horizon,
                prediction=float(p),
                model_name=model.name,
                model_version=model.version,
            )
            for t, d, p in zip(
                last["ticker"].tolist(),
                last["date"].tolist(),
                last["prediction"].tolist(),
                strict=True,
            )
        ]

    return app
