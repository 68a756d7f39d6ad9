"""`POST /predict` latency and throughput against a real uvicorn server (issue 12).

    pytest benchmarks/test_bench_serve.py -s                 # 200 requests per measurement
    STOCKPIPE_BENCH_SERVE_REQUESTS=50 pytest benchmarks/test_bench_serve.py -s

The server is `stockpipe serve`'s app (``create_app``) in uvicorn, in a thread on a free port,
with the prediction log on (a DuckDB warehouse in a temporary folder, as `serve` records every
prediction) and ``max_concurrent_predictions: 8`` so that 8 clients are not refused. The model
has the registered pipeline's shape on the shipped feature set (``conf/base/model.yaml``, 40
features including the market family, so every bar carries ``bench_close``): features ->
median imputer -> scaler -> Ridge, fitted on a seeded synthetic panel.

Each request sends the model's minimum history: warm-up + 1 bars per ticker. Measured:

* ``test_bench_sequential``: one client, ``STOCKPIPE_BENCH_SERVE_REQUESTS`` (200) requests
  one after the other, 1 or 100 tickers each: p50 / p99 / mean latency.
* ``test_bench_concurrent``: 8 clients (threads), the same number of 1-ticker requests in all:
  requests per second over the wall time, and p50 / p99 latency under that load.

Both run against the service as `serve` runs it (``logged``) and, for one ticker, also without
the prediction log (``unlogged``), which tells the log's share of the latency.

Numbers are printed (run with ``-s``) and stored in ``extra_info`` (``--benchmark-json``);
nothing is asserted about time, only that every answer is a 200.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest
import uvicorn
from conftest import env_int, make_panel, shipped_feature_set
from fastapi import FastAPI
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import LoadedModel
from pipeline.features.engine import add_target, collect
from pipeline.model.transformer import PolarsFeatures
from pipeline.serving.api import create_app
from pipeline.settings import ServingConfig

GROUP = "serve"
CLIENTS = 8
REQUESTS = env_int("STOCKPIPE_BENCH_SERVE_REQUESTS", 200)
JSON = {"content-type": "application/json"}
LIMITS = ServingConfig(max_concurrent_predictions=CLIENTS)  # 8 clients are never refused
SERVERS = {True: "logged", False: "unlogged"}


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    """features (shipped set) -> imputer -> scaler -> Ridge, fitted on 20 x 1,500 days."""
    features = shipped_feature_set()
    panel = make_panel(20, 1500)
    labelled = collect(add_target(panel.lazy(), 1)).drop_nulls("target")
    pipe = Pipeline(
        [
            ("features", PolarsFeatures(features.config.model_dump_json(), features.columns)),
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("model", Ridge()),
        ]
    )
    pipe.fit(labelled.drop("target").to_pandas(), labelled["target"].to_numpy())
    warmup = int(pipe.named_steps["features"].warmup_)
    return LoadedModel(pipe, "bench", "1", warmup=warmup, horizon=1, benchmark="SPY")


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """``app`` in uvicorn on a free port, in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def logged(model: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """As `stockpipe serve` runs: every prediction recorded in a DuckDB warehouse."""
    log = DuckDBStore(tmp_path_factory.mktemp("serve") / "warehouse.duckdb")
    with running(create_app(model, serving=LIMITS, record=log)) as url:
        yield url


@pytest.fixture(scope="module")
def unlogged(model: LoadedModel) -> Iterator[str]:
    """The same without the prediction log: HTTP, parsing, contract and model only."""
    with running(create_app(model, serving=LIMITS)) as url:
        yield url


def body(model: LoadedModel, tickers: int) -> bytes:
    """``tickers`` tickers of warm-up + 1 bars each (with bench_close), as JSON bytes."""
    bars = make_panel(tickers, model.warmup + 1, seed=7).with_columns(
        pl.col("date").cast(pl.String)
    )
    return json.dumps({"bars": bars.to_dicts()}).encode()


def timed_posts(client: httpx.Client, payload: bytes, n: int) -> list[float]:
    """Seconds of each of ``n`` requests, one after the other; every one must be a 200."""
    seconds = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.post("/predict", content=payload, headers=JSON)
        seconds.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text[:300]
    return seconds


def stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "requests": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def report(capsys: pytest.CaptureFixture[str], what: str, numbers: dict[str, Any]) -> None:
    text = ", ".join(
        f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers.items()
    )
    with capsys.disabled():
        print(f"\n[serve] {what}: {text}")


@pytest.mark.parametrize(
    ("tickers", "log"),
    [(1, True), (1, False), (100, True)],
    ids=["1-ticker", "1-ticker-no-log", "100-tickers"],
)
@pytest.mark.benchmark(group=GROUP)
def test_bench_sequential(
    benchmark: Any,
    request: pytest.FixtureRequest,
    model: LoadedModel,
    tickers: int,
    log: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = request.getfixturevalue(SERVERS[log])
    payload = body(model, tickers)
    seconds: list[float] = []
    with httpx.Client(base_url=url, timeout=120) as client:
        timed_posts(client, payload, 3)  # warm-up: first-call costs are not the service's
        benchmark.pedantic(lambda: seconds.extend(timed_posts(client, payload, REQUESTS)), rounds=1)
    numbers = {
        **stats(seconds),
        "bars": (model.warmup + 1) * tickers,
        "body_kb": len(payload) / 1024,
    }
    benchmark.extra_info.update(numbers)
    what = f"sequential, {tickers} ticker(s) per request, {SERVERS[log]}"
    report(capsys, what, numbers)


@pytest.mark.parametrize("log", [True, False], ids=["1-ticker", "1-ticker-no-log"])
@pytest.mark.benchmark(group=GROUP)
def test_bench_concurrent(
    benchmark: Any,
    request: pytest.FixtureRequest,
    model: LoadedModel,
    log: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = request.getfixturevalue(SERVERS[log])
    payload = body(model, 1)
    per_client = max(1, REQUESTS // CLIENTS)
    clients = [httpx.Client(base_url=url, timeout=120) for _ in range(CLIENTS)]
    seconds: list[float] = []
    wall: list[float] = []

    def run() -> None:
        start = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            for part in pool.map(lambda c: timed_posts(c, payload, per_client), clients):
                seconds.extend(part)
        wall.append(time.perf_counter() - start)

    try:
        for client in clients:
            timed_posts(client, payload, 1)  # warm-up: connections open
        benchmark.pedantic(run, rounds=1)
    finally:
        for client in clients:
            client.close()
    numbers = {"clients": CLIENTS, **stats(seconds), "req_per_s": len(seconds) / wall[0]}
    benchmark.extra_info.update(numbers)
    report(capsys, f"{CLIENTS} concurrent clients, 1 ticker per request, {SERVERS[log]}", numbers)


def test_payloads_are_what_the_model_needs(model: LoadedModel, tmp_path: Path) -> None:
    """The 100-ticker body is within serving.yaml's bounds and has warm-up + 1 bars a ticker."""
    payload = body(model, 100)
    limits = ServingConfig()
    assert len(payload) <= limits.max_body_bytes
    bars = json.loads(payload)["bars"]
    assert len(bars) == 100 * (model.warmup + 1) and all(b["bench_close"] for b in bars)
