"""Hot reload end to end (issue 12): `stockpipe serve` follows the champion alias under load.

A real `stockpipe --log-json serve` process (uvicorn, own process group, free port) serves
``models:/StocksPredictionModel@champion`` from a real sqlite registry holding three versions,
polling every 0.5 s. A client thread posts predictions without pause while
`stockpipe models promote` moves the alias: the new version shows up on /model and no
response is a 5xx. Version 3's artifacts are deleted: promoting it is a counted, logged
failure and the old version keeps serving. Deadlines are generous and never asserted as
timings.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import mlflow
import pytest
from support import (
    STOCKPIPE,
    fitted_model,
    make_project,
    nvda_rows,
    run_stockpipe,
    sample_prices,
    wait_until,
)
from tracking_server import free_port

from pipeline.config import load_config
from pipeline.tracking.mlflow_adapter import MlflowRegistry, MlflowTracker

pytestmark = pytest.mark.slow  # logs three real models, starts a server process

MODEL = "StocksPredictionModel"
INTERVAL = "0.5"  # seconds between registry polls
DEADLINE = 90.0  # seconds to wait for anything (never reached when things work)


@dataclass(frozen=True)
class Project:
    root: Path
    conf: Path
    registry: MlflowRegistry


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Three registered versions of the NVDA Ridge; version 3's artifacts are gone."""
    root = tmp_path_factory.mktemp("reload")
    conf = make_project(root)
    cfg = load_config(conf)
    tracker = MlflowTracker(cfg.tracking_uri, "reload", root / "artifacts")
    registry = MlflowRegistry(cfg.tracking_uri, MODEL)
    fitted = fitted_model()
    example = sample_prices("NVDA").tail(fitted.warmup + 5).to_pandas()
    for _ in range(3):
        with tracker.start_run("fit") as run:
            model_uri = run.log_model(fitted.predictor, example, {})
            registry.register(model_uri, run.run_id, {"horizon": "1"})
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)
    artifacts = urlparse(client.get_model_version_download_uri(MODEL, "3")).path
    shutil.rmtree(artifacts)  # registered, but it can no longer be loaded
    return Project(root, conf, registry)


@dataclass(frozen=True)
class Server:
    client: httpx.Client
    log: Path


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[Server]:
    """`stockpipe --log-json serve` on a free port, ready; its stderr goes to serve.log.

    One server for the module (start-up loads MLflow): each test first moves the champion to
    the version it starts from and waits until the server follows.
    """
    project.registry.set_alias("champion", "1")
    port = free_port()
    log = project.root / "serve.log"
    args = ["--log-json", "serve", "--config", str(project.conf), "--port", str(port)]
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(STOCKPIPE), *args, "--reload-interval", INTERVAL],
            cwd=project.root,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own group: stopped whole, whatever it spawned
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            until(lambda: _status(client, "/ready") == 200, f"ready ({log.read_text()[-2000:]})")
            yield Server(client, log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)


def _status(client: httpx.Client, path: str) -> int:
    try:
        return client.get(path).status_code
    except httpx.TransportError:  # not listening yet
        return 0


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (polled), failing after DEADLINE seconds with ``what``."""
    wait_until(condition, DEADLINE, what, interval=0.1)


@dataclass
class Load:
    """A client thread posting the same request without pause; every answer recorded."""

    client: httpx.Client
    body: dict[str, Any]
    answers: list[tuple[int, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            response = self.client.post("/predict", json=self.body)
            version = response.json()[0]["model_version"] if response.status_code == 200 else None
            self.answers.append((response.status_code, version))

    def served(self, version: str) -> int:
        return sum(1 for _, v in self.answers if v == version)

    @contextmanager
    def running(self) -> Iterator[Load]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join(DEADLINE)


def metric(client: httpx.Client, name: str) -> float:
    """The value of one sample in /metrics (0 when absent)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def promote(project: Project, version: str) -> None:
    args = ("models", "promote", version, "--config", str(project.conf))
    done = run_stockpipe(project.root, *args)
    assert done.returncode == 0, done.stderr


def request_body(client: httpx.Client) -> dict[str, Any]:
    """The minimum bars the served model needs, for one ticker."""
    rows = client.get("/model").json()["warmup_rows"] + 1
    return {"bars": nvda_rows(rows).to_dicts()}


def json_lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in log.read_text().splitlines() if ln.startswith("{")]


def serving_version(client: httpx.Client) -> str:
    return str(client.get("/model").json()["version"])


def start_from(project: Project, server: Server, version: str) -> None:
    """The champion on ``version``, and the server serving it."""
    project.registry.set_alias("champion", version)
    until(lambda: serving_version(server.client) == version, f"/model on version {version}")


def test_a_promotion_under_load_is_served_without_a_5xx(project: Project, server: Server) -> None:
    client = server.client
    start_from(project, server, "1")
    with Load(client, request_body(client)).running() as load:
        until(lambda: load.served("1") >= 3, "predictions from version 1")
        promote(project, "2")  # the CLI, in its own process, as an operator would
        until(lambda: serving_version(client) == "2", "/model on version 2")
        until(lambda: load.served("2") >= 3, "predictions from version 2")
    statuses = {status for status, _ in load.answers}
    assert statuses == {200}, load.answers  # nothing failed, before, during or after
    assert client.get("/model").json()["alias"] == "champion"
    assert metric(client, 'stockpipe_predictions_total{model_version="2"}') >= 3
    assert metric(client, "stockpipe_model_version") == 2
    lines = json_lines(server.log)
    requests = [r for r in lines if r["logger"] == "pipeline.serving.requests"]
    predictions = [r for r in requests if r["path"] == "/predict"]
    assert {r["model_version"] for r in predictions} >= {"1", "2"}
    assert all(r["tickers"] == 1 and r["status"] == 200 for r in predictions)
    assert all(len(r["request_id"]) == 32 and r["latency_ms"] >= 0 for r in requests)
    assert any("version 2 (was version 1)" in r["message"] for r in lines)


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    project: Project, server: Server
) -> None:
    client = server.client
    start_from(project, server, "2")
    failures = metric(client, "stockpipe_model_reload_failures_total")
    with Load(client, request_body(client)).running() as load:
        promote(project, "3")  # its artifacts were deleted
        until(
            lambda: metric(client, "stockpipe_model_reload_failures_total") >= failures + 2,
            "two failed reloads (one per poll)",
        )
    assert {status for status, _ in load.answers} == {200}
    assert {version for _, version in load.answers} == {"2"}
    assert serving_version(client) == "2" and client.get("/ready").status_code == 200
    promote(project, "1")  # a loadable version again: followed as usual
    until(lambda: serving_version(client) == "1", "/model on version 1")
    errors = [r["message"] for r in json_lines(server.log) if r["level"] == "ERROR"]
    assert any(f"{MODEL}@champion" in e and "version 2 keeps serving" in e for e in errors), errors
