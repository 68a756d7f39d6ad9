"""`stockpipe serve --workers 2` end to end (issue 15), on a real sqlite MLflow registry.

A real `stockpipe --log-json serve --workers 2` process (own process group, free port) serves
the champion of a registered NVDA Ridge. It must become ready, answer ``/predict`` exactly as
`score` does (to 1e-9), log every prediction of concurrent clients once in the prediction log
(both workers writing the same SQLite file, while a `score` run logs and reads the warehouse
meanwhile), and stop cleanly, workers included, on SIGTERM.
Deadlines are generous and never asserted as timings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest
from support import STOCKPIPE, fitted_model, make_project, overlay, sample_prices
from tracking_server import free_port

from pipeline import bootstrap
from pipeline.config import load_config
from pipeline.data.predlog import SQLiteLog
from pipeline.serving.score import HISTORY_MARGIN, score
from pipeline.serving.sinks import ParquetSink
from pipeline.tracking.mlflow_adapter import MlflowRegistry, MlflowTracker

pytestmark = pytest.mark.slow  # logs a real model, starts a server with two worker processes

MODEL = "StocksPredictionModel"
DEADLINE = 120.0  # seconds to wait for anything (never reached when things work)
CLIENTS = 8
PER_CLIENT = 4
TICKERS = ("NVDA", "NVDB")  # the same bars under two names: two rows a request


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/ready").status_code == 200
    except httpx.TransportError:  # not listening yet
        return False


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def request_body(rows: int, cut: int = 0) -> dict[str, Any]:
    """The last ``rows`` NVDA bars before the ``cut`` most recent ones, under each ticker."""
    nvda = sample_prices("NVDA")
    recent = nvda.head(nvda.height - cut).tail(rows)
    bars = [
        {**r, "ticker": t, "date": str(r["date"])}
        for t in TICKERS
        for r in recent.iter_rows(named=True)
    ]
    return {"bars": bars}


def test_two_workers_serve_log_every_prediction_and_stop_on_sigterm(tmp_path: Path) -> None:
    conf = make_project(tmp_path)
    # The bound is per worker, and nothing makes the clients spread evenly over the two.
    overlay(conf, "serving", max_concurrent_predictions=CLIENTS)
    cfg = load_config(conf)
    fitted = fitted_model()
    tracker = MlflowTracker(cfg.tracking_uri, "workers", tmp_path / "artifacts")
    registry = MlflowRegistry(cfg.tracking_uri, MODEL)
    with tracker.start_run("fit") as run:
        example = sample_prices("NVDA").tail(fitted.warmup + 5).to_pandas()
        uri = run.log_model(fitted.predictor, example, {})
        registry.set_alias("champion", registry.register(uri, run.run_id, {"horizon": "1"}))
    batch = score(cfg, bootstrap.score_ports(cfg), ParquetSink(tmp_path / "score.parquet"))

    port, log = free_port(), tmp_path / "serve.log"
    args = ["--log-json", "serve", "--config", str(conf), "--port", str(port), "--workers", "2"]
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(STOCKPIPE), *args],
            cwd=tmp_path,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own group: stopped whole, whatever it spawned
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            until(lambda: _ready(client), f"ready ({log.read_text()[-2000:]})")
            rows = fitted.warmup + 1 + HISTORY_MARGIN  # the window `score` reads
            online = client.post("/predict", json=request_body(rows))
            assert online.status_code == 200, online.text
            cuts = range(1, CLIENTS * PER_CLIENT + 1)  # one as-of date per request
            bodies = [request_body(fitted.warmup + 1, cut) for cut in cuts]
            with ThreadPoolExecutor(CLIENTS) as pool:
                posted = pool.map(lambda b: client.post("/predict", json=b), bodies)
                # A batch job on the same project while both workers log: never blocked.
                again = score(cfg, bootstrap.score_ports(cfg), ParquetSink(tmp_path / "p2.parquet"))
                answers = list(posted)
        assert [a.status_code for a in answers] == [200] * len(bodies), answers[0].text
        proc.send_signal(signal.SIGTERM)  # the supervisor: it stops its workers
        assert proc.wait(DEADLINE) == 0, log.read_text()[-3000:]
        # No worker outlives it (multiprocessing's resource tracker follows within moments).
        until(lambda: _group_gone(proc.pid), "the workers to exit")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)

    # Parity: both tickers carry NVDA's bars, so both get `score`'s NVDA prediction.
    predicted = pl.DataFrame(online.json())
    assert predicted["ticker"].to_list() == list(TICKERS)
    expected = batch.frame["prediction"][0]
    np.testing.assert_allclose(predicted["prediction"], expected, rtol=0, atol=1e-9)

    # Every prediction served was logged once: one row per (request, ticker), no key lost.
    served = {(r["ticker"], r["as_of_date"]) for a in answers for r in a.json()}
    in_log = SQLiteLog(tmp_path / "warehouse.log.sqlite").rows()
    logged = (
        in_log.with_columns(pl.col("as_of_date").cast(pl.String))
        .filter(pl.col("source") == "api", pl.col("as_of_date") < predicted["as_of_date"][0])
        .select("ticker", "as_of_date")
        .rows()
    )
    assert len(served) == len(bodies) * len(TICKERS)
    assert sorted(logged) == sorted(served)
    assert in_log.filter(pl.col("source") == "score").height == 1  # both scores: one key
    assert again.frame["prediction"][0] == expected
    lines = [json.loads(ln) for ln in log.read_text().splitlines() if ln.startswith("{")]
    statuses = [ln["status"] for ln in lines if ln.get("path") == "/predict"]
    assert statuses == [200] * (len(bodies) + 1)  # each worker's request log, one line each
