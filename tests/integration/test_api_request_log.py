"""The service's request log end to end (issue 24 item 4): the real app (the fitted ridge
pipeline behind ``create_app``, run with its lifespan by a TestClient) logs every request it
answers, probes and errors included, into the real SQLite file; the health section's
percentiles per endpoint equal numpy.percentile (method 'linear') on the rows read back with
plain sqlite3. Also: the composition root puts the request log beside the warehouse (what
`serve` writes is what `monitor` reads), and two processes writing one file keep its bound."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import make_project, nvda_rows

from pipeline import bootstrap, serving_app
from pipeline.config import load_config
from pipeline.data.predlog import empty_log
from pipeline.domain import LoadedModel
from pipeline.monitoring.health import health_section, latency_start
from pipeline.serving.api import create_app
from pipeline.serving.requeststore import BufferedRequests, RequestStore


def bars(rows: int) -> list[dict[str, Any]]:
    """The last ``rows`` NVDA sample bars as a POST /predict body lists them."""
    return [{**r, "date": str(r["date"])} for r in nvda_rows(rows).iter_rows(named=True)]


def logged(path: Path) -> list[dict[str, Any]]:
    """Every row of the request log, in insertion order, read with a plain sqlite3."""
    with sqlite3.connect(path) as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute("SELECT * FROM requests ORDER BY rowid")]


def exercise(client: TestClient) -> list[str]:
    """8 predictions (30 to 250 bars), one refused (422), 20 probes and an unknown path (404);
    returns the predictions' request ids."""
    ids = []
    for rows in (30, 60, 120, 250, 30, 60, 120, 250):
        answer = client.post("/predict", json={"bars": bars(rows)})
        assert answer.status_code == 200, answer.text
        ids.append(answer.headers["X-Request-ID"])
    assert client.post("/predict", json={"bars": bars(5)}).status_code == 422
    for probe in ["/health"] * 12 + ["/ready"] * 5 + ["/metrics"] * 3:
        assert client.get(probe).status_code == 200
    assert client.get("/nowhere", headers={"X-Request-ID": "mine-1"}).status_code == 404
    return ids


def test_every_request_is_logged_and_health_reports_numpys_percentiles(
    ridge_model: LoadedModel, tmp_path: Path
) -> None:
    path = tmp_path / "warehouse.log.sqlite"
    model = dataclasses.replace(ridge_model, name="M", version="3")
    app = create_app(model, requests=BufferedRequests(RequestStore(path)))
    since = latency_start(1)
    with TestClient(app) as client:  # with its lifespan: shutting down writes the queue
        ids = exercise(client)
    rows = logged(path)
    assert len(rows) == 8 + 1 + 20 + 1
    predicts = [r for r in rows if r["endpoint"] == "/predict"]
    assert [r["request_id"] for r in predicts[:8]] == ids
    assert [r["status"] for r in predicts] == [200] * 8 + [422]
    assert {(r["method"], r["model_version"], r["tickers"]) for r in predicts[:8]} == {
        ("POST", "3", 1)
    }
    assert rows[-1]["endpoint"] == "other" and rows[-1]["request_id"] == "mine-1"
    health = health_section(empty_log(), RequestStore(path).since(since), since)
    assert health is not None and health.logged_requests == len(rows)
    by_endpoint: dict[str, list[float]] = {}
    for r in rows:
        by_endpoint.setdefault(r["endpoint"], []).append(r["latency_ms"])
    assert (
        set(health.latency)
        == set(by_endpoint)
        == {"/predict", "/health", "/ready", "/metrics", "other"}
    )
    for endpoint, values in by_endpoint.items():
        got = health.latency[endpoint]
        want = np.percentile(values, [50, 95, 99], method="linear")
        assert [got.p50_ms, got.p95_ms, got.p99_ms] == pytest.approx(want, rel=1e-12)
        assert got.requests == len(values) and got.server_errors == 0
    assert health.latency["/predict"].p50_ms > health.latency["/health"].p50_ms


def test_serve_writes_the_request_log_monitor_reads(tmp_path: Path) -> None:
    """``serving_app.build_app`` (what each `serve` worker runs) with its default request log:
    the rows land beside the configured warehouse, where ``bootstrap.monitor_ports`` reads."""
    cfg = load_config(make_project(tmp_path))
    start = latency_start(1)
    before = set(threading.enumerate())
    app = serving_app.build_app(cfg, "models:/Nothing/1", reload_interval=3600.0)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503  # no such model: never ready
    # Shutdown stops the model follower, but its one load attempt (creating the MLflow store
    # on first use) can take longer than the conftest's 5 s grace on a loaded CI machine.
    for thread in set(threading.enumerate()) - before:
        if thread.name.startswith("stockpipe-reload"):
            thread.join(60)
            assert not thread.is_alive(), f"{thread.name} still polls after shutdown"
    store = bootstrap.monitor_ports(cfg).requests
    assert isinstance(store, RequestStore) and store.path == tmp_path / "warehouse.log.sqlite"
    seen = store.since(start)
    assert seen["endpoint"].to_list() == ["/health", "/ready"]
    assert seen["status"].to_list() == [200, 503]


WRITER = """
import sys, time
from pipeline.serving.requeststore import RequestRecord, RequestStore
store = RequestStore(sys.argv[1], max_rows=300)
for b in range(100):
    rows = [RequestRecord(time.time(), "/p", "GET", 200, 1.0, f"{sys.argv[2]}-{b}-{i}", None, None)
            for i in range(20)]
    store.write(rows)
"""


def test_two_processes_share_the_file_and_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "w.log.sqlite"
    RequestStore(path).count()  # the file and its table exist before both start
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name]) for name in ("a", "b")
    ]
    assert [w.wait(60) for w in writers] == [0, 0], "a writer failed"
    with sqlite3.connect(path) as con:
        low, high, count = con.execute(
            "SELECT min(rowid), max(rowid), count(*) FROM requests"
        ).fetchone()
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # 4,000 rows went in; the newest 300 are kept, their rowids consecutive.
    assert (count, high, high - low + 1) == (300, 4000, 300)
