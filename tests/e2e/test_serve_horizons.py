"""Serving several horizons end to end (issue 13), on a real sqlite MLflow registry.

A project configured with ``target: {horizons: [1, 5, 20]}`` has one registered model per
horizon, ``StocksPredictionModel``, ``_h5`` and ``_h20`` (the last one's version without a
``horizon`` tag: it predicts the horizon it was configured for), each a features -> imputer ->
Ridge pipeline fitted on that horizon's target, and a second version of ``_h5``. The app is
built as `stockpipe serve` builds it (``bootstrap.model_followers``) and loads through the real
MLflow loader; every prediction is checked against the fitted pipeline's own ``predict`` on
the same bars, and against `score`. A real `stockpipe --log-json serve` process checks the
command's wiring. Deadlines are generous and never asserted as timings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from support import STOCKPIPE, make_project, sample_prices, wait_until, write_yaml
from tracking_server import free_port

from pipeline import bootstrap
from pipeline.config import load_config
from pipeline.features.engine import add_target, collect
from pipeline.features.spec import FeaturesConfig
from pipeline.model.transformer import PolarsFeatures
from pipeline.serving.api import create_app
from pipeline.serving.score import HISTORY_MARGIN, score
from pipeline.serving.sinks import ParquetSink
from pipeline.settings import StockpipeConfig
from pipeline.tracking.mlflow_adapter import MlflowRegistry, MlflowTracker

pytestmark = pytest.mark.slow  # logs four real models; one test starts a server process

HORIZONS = (1, 5, 20)
INTERVAL = 0.2  # seconds between registry polls
DEADLINE = 90.0  # seconds to wait for anything (never reached when things work)


@dataclass(frozen=True)
class Project:
    root: Path
    conf: Path
    cfg: StockpipeConfig
    registries: dict[int, MlflowRegistry]
    # (horizon, version) -> the fitted pipeline registered as that version: the oracle.
    pipes: dict[tuple[int, str], Pipeline]

    def name(self, horizon: int) -> str:
        return self.registries[horizon].name

    def champions(self, **versions: str) -> None:
        """Point each horizon's champion (``h5="2"``) at a version; unnamed ones at "1"."""
        for h, registry in self.registries.items():
            registry.set_alias("champion", versions.get(f"h{h}", "1"))


def _fit(prices: pl.DataFrame, horizon: int, alpha: float = 1.0) -> Pipeline:
    """features -> imputer -> Ridge on ``horizon``'s target (the shape of a registered model)."""
    labelled = collect(add_target(prices.lazy(), horizon)).drop_nulls("target")
    pipe = Pipeline(
        [
            ("features", PolarsFeatures(FeaturesConfig().model_dump_json())),
            ("impute", SimpleImputer()),
            ("model", Ridge(alpha=alpha)),
        ]
    )
    return pipe.fit(labelled.drop("target").to_pandas(), labelled["target"].to_numpy())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Versions 1 of every horizon's model, version 2 of ``_h5``; no champion yet."""
    root = tmp_path_factory.mktemp("horizons")
    conf = make_project(root)
    write_yaml(conf / "local" / "model.yaml", {"target": {"horizons": list(HORIZONS)}})
    cfg = load_config(conf)
    tracker = MlflowTracker(cfg.tracking_uri, "horizons", root / "artifacts")
    nvda = sample_prices("NVDA")
    registries = {
        h: MlflowRegistry(cfg.tracking_uri, cfg.for_horizon(h).tracking.registered_model)
        for h in HORIZONS
    }
    pipes: dict[tuple[int, str], Pipeline] = {}
    for h, alpha in ((1, 1.0), (5, 1.0), (20, 1.0), (5, 50.0)):
        pipe = _fit(nvda, h, alpha)
        tags = {"horizon": str(h)} if h != 20 else {}  # h20: no tag, the configured horizon
        with tracker.start_run(f"fit-h{h}") as run:
            uri = run.log_model(pipe, nvda.tail(400).to_pandas(), {})
            pipes[h, registries[h].register(uri, run.run_id, tags)] = pipe
    assert sorted(pipes) == [(1, "1"), (5, "1"), (5, "2"), (20, "1")]
    return Project(root, conf, cfg, registries, pipes)


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (polled), failing after DEADLINE seconds with ``what``."""
    wait_until(condition, DEADLINE, what, interval=0.05)


def request_bars(rows: int) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The last ``rows`` NVDA bars, and the request body sending them."""
    recent = sample_prices("NVDA").tail(rows)
    body = {"bars": [{**r, "date": str(r["date"])} for r in recent.iter_rows(named=True)]}
    return recent, body


def oracle(project: Project, horizon: int, version: str, bars: pl.DataFrame) -> float:
    """What the fitted pipeline itself predicts for the latest of ``bars``."""
    return float(project.pipes[horizon, version].predict(bars.to_pandas())[-1])


def app_of(project: Project) -> Any:
    cfg = project.cfg
    followers = bootstrap.model_followers(cfg, interval=INTERVAL)
    return create_app(
        followers, cfg.model.target.horizon, cfg.serving, bootstrap.contract_policy(cfg)
    )


def test_every_horizon_is_served_and_one_promotion_reloads_only_its_model(
    project: Project,
) -> None:
    client_ = mlflow.MlflowClient(project.cfg.tracking_uri, registry_uri=project.cfg.tracking_uri)
    for h in HORIZONS:  # whatever another test left: no champion anywhere yet
        if "champion" in client_.get_registered_model(project.name(h)).aliases:
            client_.delete_registered_model_alias(project.name(h), "champion")
    for h in (1, 5):
        project.registries[h].set_alias("champion", "1")
    with TestClient(app_of(project)) as client:
        only_h20 = "models not loaded yet for horizon(s) 20; h20"
        until(lambda: only_h20 in client.get("/ready").text, "h1, h5 loaded; h20 failing")
        waiting = client.get("/ready")
        assert waiting.status_code == 503 and client.get("/model").status_code == 503
        assert "has no alias 'champion'" in waiting.json()["detail"]
        project.registries[20].set_alias("champion", "1")
        until(lambda: client.get("/ready").status_code == 200, "every horizon loaded")

        listed = client.get("/model").json()["horizons"]
        assert [(d["name"], d["version"], d["horizon"]) for d in listed] == [
            (project.name(h), "1", h) for h in HORIZONS
        ]
        rows = client.get("/health").json()["warmup_rows"] + 1
        bars, body = request_bars(rows)
        first = client.post("/predict", json=body).json()
        assert [(r["horizon"], r["model_name"]) for r in first] == [
            (h, project.name(h)) for h in HORIZONS
        ]
        expected = [oracle(project, h, "1", bars) for h in HORIZONS]
        np.testing.assert_allclose([r["prediction"] for r in first], expected, rtol=0, atol=1e-9)
        assert len(set(expected)) == 3  # three models, three different predictions
        text = client.get("/metrics").text
        for h in HORIZONS:
            sample = f'stockpipe_model_version{{horizon="{h}",model_name="{project.name(h)}"}} 1.0'
            assert sample in text

        project.registries[5].set_alias("champion", "2")
        until(lambda: client.get("/model").json()["horizons"][1]["version"] == "2", "h5 on v2")
        after = client.get("/model").json()["horizons"]
        assert [d["version"] for d in after] == ["1", "2", "1"]
        assert [a["loaded_at"] == b["loaded_at"] for a, b in zip(listed, after, strict=True)] == [
            True,
            False,
            True,
        ]
        second = client.post("/predict", json=body).json()
    assert [r["model_version"] for r in second] == ["1", "2", "1"]
    assert second[1]["prediction"] == pytest.approx(oracle(project, 5, "2", bars), abs=1e-9)
    assert second[1]["prediction"] != first[1]["prediction"]
    assert [second[i]["prediction"] for i in (0, 2)] == [first[i]["prediction"] for i in (0, 2)]


def test_score_and_predict_agree_on_every_horizon(project: Project) -> None:
    project.champions(h5="2")
    batch = score(project.cfg, bootstrap.score_ports(project.cfg), ParquetSink(project.root / "s"))
    with TestClient(app_of(project)) as client:
        until(lambda: client.get("/ready").status_code == 200, "every horizon loaded")
        # The very window `score` reads: the longest warm-up, the row predicted, the margin.
        rows = client.get("/health").json()["warmup_rows"] + 1 + HISTORY_MARGIN
        response = client.post("/predict", json=request_bars(rows)[1])
    assert response.status_code == 200, response.text
    online = pl.DataFrame(response.json())
    offline = batch.frame.sort("ticker", "horizon")
    assert online["horizon"].to_list() == offline["horizon"].to_list() == list(HORIZONS)
    assert online["model_version"].to_list() == offline["model_version"].to_list()
    assert online["model_name"].to_list() == offline["model_name"].to_list()
    np.testing.assert_allclose(online["prediction"], offline["prediction"], rtol=0, atol=1e-9)


@contextmanager
def serve(project: Project, log: Path) -> Iterator[httpx.Client]:
    """`stockpipe --log-json serve` on a free port (own process group), until it is ready."""
    port = free_port()
    args = ["--log-json", "serve", "--config", str(project.conf), "--port", str(port)]
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(STOCKPIPE), *args, "--reload-interval", "0.5"],
            cwd=project.root,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own group: stopped whole, whatever it spawned
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            until(lambda: _ready(client), f"ready ({log.read_text()[-2000:]})")
            yield client
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/ready").status_code == 200
    except httpx.TransportError:  # not listening yet
        return False


def test_the_serve_command_serves_every_configured_horizon(project: Project) -> None:
    project.champions()
    log = project.root / "serve.log"
    with serve(project, log) as client:
        assert client.get("/ready").json() == {"status": "ready", "version": "h1=1,h5=1,h20=1"}
        assert [d["horizon"] for d in client.get("/model").json()["horizons"]] == list(HORIZONS)
        rows = client.get("/health").json()["warmup_rows"] + 1
        response = client.post("/predict", json=request_bars(rows)[1])
        assert response.status_code == 200, response.text
        assert [r["horizon"] for r in response.json()] == list(HORIZONS)
    lines = [json.loads(ln) for ln in log.read_text().splitlines() if ln.startswith("{")]
    (logged,) = [r for r in lines if r.get("path") == "/predict"]
    assert logged["model_version"] == "h1=1,h5=1,h20=1" and logged["status"] == 200
