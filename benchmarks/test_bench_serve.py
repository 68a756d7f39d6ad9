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

* ``test_bench_curve`` (issue 15): the same app in ``--workers 1`` and ``--workers 2``
  uvicorn processes (a subprocess, as `stockpipe serve --workers N` runs it: an app factory
  per worker), log on and off: requests per second, p50 and p99 for 1, 2, 4 and 8 concurrent
  1-ticker clients. ``test_curve_table`` prints them as one table, with the 8-client ratios.
  ``STOCKPIPE_BENCH_SERVE_ROUNDS`` (1) repeats every measurement; the table shows medians.
  For a before/after comparison run this file with ``PYTHONPATH`` pointing at the other tree.

Numbers are printed (run with ``-s``) and stored in ``extra_info`` (``--benchmark-json``);
nothing is asserted about time, only that every answer is a 200.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest
import uvicorn
from conftest import env_int, fit_champion, make_panel
from fastapi import FastAPI

from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import LoadedModel
from pipeline.serving.api import create_app
from pipeline.settings import ServingConfig

GROUP = "serve"
CLIENTS = 8
REQUESTS = env_int("STOCKPIPE_BENCH_SERVE_REQUESTS", 200)
JSON = {"content-type": "application/json"}
LIMITS = ServingConfig(max_concurrent_predictions=CLIENTS)  # 8 clients are never refused
SERVERS = {True: "logged", False: "unlogged"}
CURVE_CLIENTS = (1, 2, 4, 8)
ROUNDS = env_int("STOCKPIPE_BENCH_SERVE_ROUNDS", 1)
MODEL_ENV = "STOCKPIPE_BENCH_SERVE_MODEL"  # the pickled model the worker processes serve
LOG_ENV = "STOCKPIPE_BENCH_SERVE_WAREHOUSE"  # their prediction log; unset: none
ADDRESS_ENV, KEY_ENV = "STOCKPIPE_BENCH_SERVE_LOG_ADDRESS", "STOCKPIPE_BENCH_SERVE_LOG_KEY"
HERE = Path(__file__).resolve().parent
CURVE: dict[tuple[int, bool, int], list[dict[str, float]]] = {}  # (workers, log, clients)


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    """features (shipped set) -> imputer -> scaler -> Ridge, fitted on 20 x 1,500 days."""
    pipe = fit_champion(make_panel(20, 1500), impute="median")
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


def worker_app() -> FastAPI:
    """The app factory each worker process calls (``factory=True``), like `serve`'s."""
    model = pickle.loads(Path(os.environ[MODEL_ENV]).read_bytes())  # our own file
    path = os.environ.get(LOG_ENV)
    record: Any = DuckDBStore(Path(path)) if path else None
    with suppress(ImportError):  # a tree before issue 15 logs request by request
        from pipeline.serving.logserver import RemoteLog
        from pipeline.serving.logsession import HeldWarehouse, writer_lock
        from pipeline.serving.logwriter import GroupWriter

        if path and ADDRESS_ENV in os.environ:  # `serve --workers N`: the one writer's client
            record = GroupWriter(RemoteLog(os.environ[ADDRESS_ENV], os.environ[KEY_ENV]))
        elif path:
            record = GroupWriter(HeldWarehouse(record, writer_lock(path)))
    return create_app(model, serving=LIMITS, record=record)


def serve_workers(n: int, port: int) -> None:
    """What `stockpipe serve --workers n` runs (in the bench's subprocess): with several
    workers and the log on, this process writes the log for all of them."""
    path = os.environ.get(LOG_ENV)
    server: Any = None
    if n > 1 and path:
        with suppress(ImportError):
            from pipeline.serving.logserver import LogServer
            from pipeline.serving.logsession import HeldWarehouse, writer_lock

            server = LogServer(HeldWarehouse(DuckDBStore(Path(path)), writer_lock(path)))
            server.start()
            os.environ.update({ADDRESS_ENV: server.address, KEY_ENV: server.authkey})
    try:
        uvicorn.run(
            "test_bench_serve:worker_app",
            factory=True,
            workers=n,
            port=port,
            log_level="warning",
            access_log=False,
        )
    finally:
        if server is not None:
            server.close()


@contextmanager
def workers(model: LoadedModel, tmp: Path, n: int, log: bool) -> Iterator[str]:
    """``n`` uvicorn worker processes serving ``model`` on a free port; yields the base URL."""
    (tmp / "model.pkl").write_bytes(pickle.dumps(model))
    env = {**os.environ, MODEL_ENV: str(tmp / "model.pkl")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    if log:
        env[LOG_ENV] = str(tmp / "warehouse.duckdb")
    port = free_port()
    code = f"import test_bench_serve as bench; bench.serve_workers({n}, {port})"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, deadline: float = 120.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"no worker answered at {url} within {deadline:g} s")


def load(url: str, payload: bytes, clients: int, total: int) -> dict[str, float]:
    """``clients`` clients sending ``total`` requests in all: req/s, p50, p99."""
    per_client = max(1, total // clients)
    pool = [httpx.Client(base_url=url, timeout=120) for _ in range(clients)]
    seconds: list[float] = []
    try:
        with ThreadPoolExecutor(clients) as ex:
            list(ex.map(lambda c: timed_posts(c, payload, 2), pool))  # connections open
            start = time.perf_counter()
            for part in ex.map(lambda c: timed_posts(c, payload, per_client), pool):
                seconds.extend(part)
            wall = time.perf_counter() - start
    finally:
        for client in pool:
            client.close()
    return {**stats(seconds), "req_per_s": len(seconds) / wall}


@pytest.mark.parametrize("log", [True, False], ids=["log", "no-log"])
@pytest.mark.parametrize("n", [1, 2], ids=["workers-1", "workers-2"])
def test_bench_curve(
    model: LoadedModel, tmp_path: Path, n: int, log: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = body(model, 1)
    with workers(model, tmp_path, n, log) as url:
        load(url, payload, CLIENTS, 4 * CLIENTS)  # warm-up: every worker imports and predicts
        for _ in range(ROUNDS):
            for clients in CURVE_CLIENTS:
                numbers = load(url, payload, clients, REQUESTS)
                CURVE.setdefault((n, log, clients), []).append(numbers)
                what = f"workers {n}, log {'on' if log else 'off'}, {clients} client(s)"
                report(capsys, what, {"clients": clients, **numbers})


def median(key: tuple[int, bool, int], field: str) -> float:
    return float(np.median([m[field] for m in CURVE.get(key, [{field: np.nan}])]))


def test_curve_table(capsys: pytest.CaptureFixture[str]) -> None:
    """The curve as one table (medians over rounds) and the 8-client ratios, 2 vs 1 worker."""
    lines = ["workers  log  clients  req/s   p50 ms  p99 ms"]
    for n, log, clients in sorted(CURVE):
        key = (n, log, clients)
        lines.append(
            f"{n:>7}  {'on' if log else 'off':>3}  {clients:>7}  {median(key, 'req_per_s'):5.1f}"
            f"  {median(key, 'p50_ms'):7.1f}  {median(key, 'p99_ms'):6.1f}"
        )
    for log in (True, False):
        ratio = median((2, log, CLIENTS), "req_per_s") / median((1, log, CLIENTS), "req_per_s")
        lines.append(f"8 clients, log {'on' if log else 'off'}: 2 workers / 1 = {ratio:.2f}x")
    with capsys.disabled():
        print("\n[serve] curve\n" + "\n".join(lines))
