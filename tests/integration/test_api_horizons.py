"""`stockpipe serve` with several horizons (issue 13): one model per configured horizon, each
followed and hot-reloaded on its own, all answering one `POST /predict`.

Each horizon's registered model (``NAME``, ``NAME_h5``, ``NAME_h20``) is a hand-written fake
loader/resolver pair answering a constant that says which horizon and version predicted
(``h * 100 + version``), so every row shows which model made it. ``ModelFollower.poll()`` is
driven by hand: reloads are tested without threads racing a clock. The real MLflow registry
is exercised by tests/e2e/test_serve_horizons.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from support import request_bars as bars
from support import wait_until, wait_until_ready, write_yaml

from pipeline import bootstrap
from pipeline.config import load_config
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import LoadedModel
from pipeline.errors import TrackingError
from pipeline.evaluation.intervals import IntervalCalibration
from pipeline.logging_setup import JsonFormatter
from pipeline.serving.api import create_app
from pipeline.serving.holder import ModelHolder, Slot, Slots
from pipeline.serving.reload import ModelFollower
from pipeline.settings import ServingConfig

NAME = "StocksPredictionModel"
HORIZONS = (1, 5, 20)
WARMUPS = {1: 2, 5: 3, 20: 4}  # the longest (h20) decides how many bars a request needs
DEADLINE = 30.0  # seconds a background load may take before a test gives up (never reached)
BOUNDS = ["lower_80", "upper_80", "lower_95", "upper_95"]


class Constant:
    """A predictor answering ``value`` for every row; blocks first while ``gate`` is closed."""

    def __init__(self, value: float, gate: threading.Event | None = None) -> None:
        self.value = value
        self.gate = gate
        self.started = threading.Event()

    def predict(self, frame: Any) -> np.ndarray[Any, Any]:
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(DEADLINE)
        return np.full(len(frame), self.value)


@dataclasses.dataclass
class Horizon:
    """The registered model of one horizon: its loader and version resolver.

    ``gate`` holds every load until opened; versions in ``broken`` fail to load; ``down``
    fails every call; ``tagged=False`` registers versions without a ``horizon`` tag.
    """

    horizon: int
    champion: str = "1"
    gate: threading.Event | None = None
    broken: set[str] = dataclasses.field(default_factory=set)
    down: bool = False
    tagged: bool = True
    predictors: dict[str, Any] = dataclasses.field(default_factory=dict)
    intervals: IntervalCalibration | None = None
    loads: list[str] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return NAME if self.horizon == HORIZONS[0] else f"{NAME}_h{self.horizon}"

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@champion"

    def follows(self, model_uri: str) -> str | None:
        return "champion" if model_uri.endswith("@champion") else None

    def resolve(self, model_uri: str) -> str:
        if self.down:
            raise TrackingError("tracking server http://mlflow:5000 is unreachable")
        return self.champion

    def load(self, model_uri: str) -> LoadedModel:
        if self.gate is not None:
            assert self.gate.wait(DEADLINE)
        number = self.resolve(model_uri)
        self.loads.append(number)
        if number in self.broken:
            raise TrackingError(f"cannot load model {model_uri}: artifact missing")
        return LoadedModel(
            predictor=self.predictors.get(number) or Constant(expected(self.horizon, number)),
            name=self.name,
            version=number,
            warmup=WARMUPS[self.horizon],
            horizon=self.horizon if self.tagged else None,
            run_id=f"run-{self.horizon}-{number}",
            intervals=self.intervals,
        )


def expected(horizon: int, version: str) -> float:
    """What version ``version`` of horizon ``horizon``'s model predicts."""
    return horizon * 100 + float(version)


@dataclasses.dataclass
class Service:
    client: TestClient
    registries: dict[int, Horizon]
    followers: dict[int, ModelFollower]


def followers_of(registries: dict[int, Horizon]) -> dict[int, ModelFollower]:
    # A long interval: tests call poll() themselves; the threads only do the first loads.
    return {h: ModelFollower(r, r, r.uri, interval=3600) for h, r in registries.items()}


def labels(horizon: int) -> str:
    """The labels of horizon ``horizon``'s model in /metrics (Prometheus sorts them by name)."""
    name = NAME if horizon == HORIZONS[0] else f"{NAME}_h{horizon}"
    return f'horizon="{horizon}",model_name="{name}"'


def rows(response: Any) -> list[tuple[str, int, float, str]]:
    """(ticker, horizon, prediction, model version) of each row, in the response's order."""
    assert response.status_code == 200, response.text
    return [
        (r["ticker"], r["horizon"], r["prediction"], r["model_version"]) for r in response.json()
    ]


@pytest.fixture
def registries() -> dict[int, Horizon]:
    return {h: Horizon(h) for h in HORIZONS}


@pytest.fixture
def service(registries: dict[int, Horizon]) -> Iterator[Service]:
    """A started app (lifespan on) following three horizons, each on its version 1."""
    followers = followers_of(registries)
    with TestClient(create_app(followers)) as client:
        wait_until_ready(client)
        yield Service(client, registries, followers)


# --------------------------------------------------------------------------- POST /predict


def test_one_prediction_per_ticker_and_horizon_each_from_its_own_model(
    service: Service,
) -> None:
    sent = bars(5, ticker="BETA") + bars(5)  # BETA first: the answer is sorted all the same
    response = service.client.post("/predict", json={"bars": sent})
    assert rows(response) == [
        (ticker, h, expected(h, "1"), "1") for ticker in ("ACME", "BETA") for h in HORIZONS
    ]
    names = [r["model_name"] for r in response.json()[:3]]
    assert names == [NAME, f"{NAME}_h5", f"{NAME}_h20"]
    assert {r["as_of_date"] for r in response.json()} == {"2024-01-06"}
    fields = {"ticker", "as_of_date", "horizon", "prediction", "model_name", "model_version"}
    # No calibrated model: no bound fields; the contract's warnings are always there.
    assert set(response.json()[0]) == fields | {"warnings"}


def test_the_bars_must_cover_the_longest_warmup(service: Service) -> None:
    short = service.client.post("/predict", json={"bars": bars(WARMUPS[20])})
    assert short.status_code == 422 and "need at least 5 bars per ticker" in short.text
    assert service.client.post("/predict", json={"bars": bars(WARMUPS[20] + 1)}).status_code == 200
    health = service.client.get("/health").json()
    assert health["warmup_rows"] == WARMUPS[20] and health["ready"] is True
    assert health["model"] == NAME and health["version"] == "h1=1,h5=1,h20=1"


def test_a_version_without_a_horizon_tag_predicts_the_horizon_it_was_configured_for(
    registries: dict[int, Horizon],
) -> None:
    registries[5].tagged = False
    with TestClient(create_app(followers_of(registries))) as client:
        wait_until_ready(client)
        answer = rows(client.post("/predict", json={"bars": bars(5)}))
        assert [h for _, h, _, _ in answer] == list(HORIZONS)
        assert [d["horizon"] for d in client.get("/model").json()["horizons"]] == list(HORIZONS)


def test_every_horizon_is_logged_in_one_batch_or_nothing_is_served(
    registries: dict[int, Horizon], tmp_path: Path
) -> None:
    store = DuckDBStore(tmp_path / "warehouse.duckdb")
    with TestClient(create_app(followers_of(registries), record=store)) as client:
        wait_until_ready(client)
        assert client.post("/predict", json={"bars": bars(5)}).status_code == 200
    logged = store.outcomes().sort("horizon")
    assert logged["horizon"].to_list() == list(HORIZONS)
    assert logged["model_name"].to_list() == [registries[h].name for h in HORIZONS]
    assert set(logged["source"]) == {"api"} and logged["run_id"][2] == "run-20-1"

    class Broken:
        calls = 0

        def record(self, frame: pl.DataFrame) -> int:
            Broken.calls += 1
            assert sorted(frame["horizon"]) == list(HORIZONS)  # one batch, every horizon
            raise OSError("disk full")

    with TestClient(create_app(followers_of(registries), record=Broken())) as client:
        wait_until_ready(client)
        refused = client.post("/predict", json={"bars": bars(5)})
    assert refused.status_code == 503 and "prediction log unavailable" in refused.text
    assert Broken.calls == 1


def test_interval_bounds_come_through_and_a_model_without_them_gets_nulls(
    registries: dict[int, Horizon],
) -> None:
    registries[1].intervals = IntervalCalibration(
        method="split", quantiles={"80": 0.5, "95": 1.0, "99": None}
    )
    with TestClient(create_app(followers_of(registries))) as client:
        wait_until_ready(client)
        h1, h5, _ = client.post("/predict", json={"bars": bars(5)}).json()
    assert [h1[k] for k in BOUNDS] == [100.5, 101.5, 100.0, 102.0]
    assert h1["lower_99"] is None and h1["upper_99"] is None  # too few residuals: no band
    assert set(h5) == set(h1) and all(h5[k] is None for k in [*BOUNDS, "lower_99"])


# --------------------------------------------------------------------------- readiness


def test_ready_is_503_naming_the_horizons_loading_and_a_prediction_waits_for_all(
    registries: dict[int, Horizon],
) -> None:
    registries[20].gate = threading.Event()  # h20's first load blocks until opened
    with TestClient(create_app(followers_of(registries))) as client:
        wait_until(
            lambda: registries[5].loads == ["1"] and registries[1].loads == ["1"],
            DEADLINE,
            "h1 and h5 to load version 1",
        )
        not_yet = client.get("/ready")
        assert not_yet.status_code == 503 and not_yet.json()["status"] == "loading"
        assert not_yet.json()["detail"] == "models not loaded yet for horizon(s) 20"
        assert client.get("/model").status_code == 503
        health = client.get("/health").json()
        assert health["ready"] is False and health["version"] == "h1=1,h5=1"
        answer: dict[str, Any] = {}
        post = threading.Thread(
            target=lambda: answer.update(r=client.post("/predict", json={"bars": bars(5)}))
        )
        post.start()
        post.join(0.3)
        assert post.is_alive()  # waiting for h20's model, not answering without it
        registries[20].gate.set()
        post.join(DEADLINE)
        assert len(rows(answer["r"])) == 3
        assert client.get("/ready").json() == {"status": "ready", "version": "h1=1,h5=1,h20=1"}


def test_a_horizon_that_never_loads_keeps_the_service_unready_with_the_reason(
    registries: dict[int, Horizon],
) -> None:
    registries[5].down = True
    limits = ServingConfig(request_timeout_seconds=0.2)
    with TestClient(create_app(followers_of(registries), serving=limits)) as client:
        wait_until(lambda: "unreachable" in client.get("/ready").text, DEADLINE, "h5's failed load")
        detail = client.get("/ready").json()["detail"]
        assert detail.startswith("models not loaded yet for horizon(s) 5; ")
        assert f"h5 ({NAME}_h5) last attempt failed: TrackingError" in detail
        refused = client.post("/predict", json={"bars": bars(5)})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "horizon(s) 5" in refused.json()["detail"]


# --------------------------------------------------------------------------- GET /model


def test_model_describes_the_primary_horizon_and_lists_every_horizon(service: Service) -> None:
    body = service.client.get("/model").json()
    assert (body["name"], body["version"], body["horizon"]) == (NAME, "1", 1)
    listed = body["horizons"]
    assert [(d["name"], d["horizon"], d["warmup_rows"]) for d in listed] == [
        (NAME, 1, 2),
        (f"{NAME}_h5", 5, 3),
        (f"{NAME}_h20", 20, 4),
    ]
    assert all(d["alias"] == "champion" and d["version"] == "1" for d in listed)
    assert [d["uri"] for d in listed] == [service.registries[h].uri for h in HORIZONS]
    assert {k: v for k, v in listed[0].items()} == {k: body[k] for k in listed[0]}


def test_a_single_model_lists_itself_as_its_only_horizon() -> None:
    model = LoadedModel(Constant(1.0), "M", "4", warmup=2, horizon=None)
    body = TestClient(create_app(model, default_horizon=5)).get("/model").json()
    assert [(d["version"], d["horizon"]) for d in body["horizons"]] == [("4", 5)]


# --------------------------------------------------------------------------- hot reload


def test_promoting_one_horizon_swaps_only_that_horizons_model(service: Service) -> None:
    client, followers = service.client, service.followers
    before = {d["horizon"]: d["loaded_at"] for d in client.get("/model").json()["horizons"]}
    service.registries[5].champion = "2"
    assert [followers[h].poll() for h in HORIZONS] == [False, True, False]
    assert [r.loads for r in service.registries.values()] == [["1"], ["1", "2"], ["1"]]
    listed = client.get("/model").json()["horizons"]
    assert [d["version"] for d in listed] == ["1", "2", "1"]
    assert [d["loaded_at"] == before[d["horizon"]] for d in listed] == [True, False, True]
    assert rows(client.post("/predict", json={"bars": bars(5)})) == [
        ("ACME", 1, 101.0, "1"),
        ("ACME", 5, 502.0, "2"),
        ("ACME", 20, 2001.0, "1"),
    ]
    text = client.get("/metrics").text
    for line in (
        f"stockpipe_model_version{{{labels(1)}}} 1.0",
        f"stockpipe_model_version{{{labels(5)}}} 2.0",
        f"stockpipe_model_version{{{labels(20)}}} 1.0",
        f"stockpipe_model_reloads_total{{{labels(5)}}} 2.0",
        f"stockpipe_model_reloads_total{{{labels(1)}}} 1.0",
    ):
        assert line in text, line


def test_a_failed_load_of_one_horizon_keeps_its_old_model_and_the_others_serving(
    service: Service,
) -> None:
    client, followers = service.client, service.followers
    service.registries[20].broken.add("2")
    service.registries[20].champion = "2"
    assert followers[20].poll() is False and followers[20].holder.failures == 1
    assert client.get("/ready").status_code == 200  # it still has a model: its old one
    answer = rows(client.post("/predict", json={"bars": bars(5)}))
    assert [v for _, _, _, v in answer] == ["1"] * 3
    text = client.get("/metrics").text
    assert f"stockpipe_model_reload_failures_total{{{labels(20)}}} 1.0" in text
    assert f"stockpipe_model_reload_failures_total{{{labels(1)}}} 0.0" in text
    service.registries[20].broken.clear()
    assert followers[20].poll() is True
    assert client.get("/model").json()["horizons"][2]["version"] == "2"


def test_a_request_in_flight_keeps_every_horizons_model_it_started_with(
    registries: dict[int, Horizon],
) -> None:
    gate = threading.Event()
    slow = Constant(expected(5, "1"), gate)
    registries[5].predictors["1"] = slow
    followers = followers_of(registries)
    with TestClient(create_app(followers)) as client:
        wait_until_ready(client)
        first: dict[str, Any] = {}
        post = threading.Thread(
            target=lambda: first.update(r=client.post("/predict", json={"bars": bars(5)}))
        )
        post.start()
        assert slow.started.wait(DEADLINE)  # inside h5's predict; h20 has not predicted yet
        for h in (5, 20):
            registries[h].champion = "2"
            assert followers[h].poll() is True  # swapped while that request runs
        second = rows(client.post("/predict", json={"bars": bars(5)}))
        assert [v for _, _, _, v in second] == ["1", "2", "2"]
        gate.set()
        post.join(DEADLINE)
    assert rows(first["r"]) == [
        ("ACME", 1, 101.0, "1"),
        ("ACME", 5, 501.0, "1"),
        ("ACME", 20, 2001.0, "1"),  # the model it captured, not the one swapped in meanwhile
    ]


# --------------------------------------------------------------------------- metrics, logs


def test_predictions_are_counted_per_model_and_the_request_log_names_every_version(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    client = service.client
    service.registries[20].champion = "3"
    assert service.followers[20].poll() is True
    with caplog.at_level(logging.INFO, logger="pipeline.serving.requests"):
        response = client.post("/predict", json={"bars": bars(5) + bars(5, ticker="BETA")})
    assert response.status_code == 200
    text = client.get("/metrics").text
    for h, version in ((1, "1"), (5, "1"), (20, "3")):
        line = f'stockpipe_predictions_total{{{labels(h)},model_version="{version}"}} 2.0'
        assert line in text, line
    reloaded = [ln for ln in text.splitlines() if ln.startswith("stockpipe_model_last_reload")]
    assert [ln.split("}")[0].split("{")[1] for ln in reloaded] == [labels(h) for h in HORIZONS]
    (record,) = [r for r in caplog.records if r.name == "pipeline.serving.requests"]
    line = json.loads(JsonFormatter().format(record))
    assert line["model_version"] == "h1=1,h5=1,h20=3" and line["tickers"] == 2
    assert "(models h1=1,h5=1,h20=3, request " in line["message"]


# --------------------------------------------------------------------------- composition


def test_serve_follows_every_configured_horizons_champion(conf_dir: Path) -> None:
    write_yaml(conf_dir / "local" / "model.yaml", {"target": {"horizons": [1, 5, 20]}})
    cfg = load_config(conf_dir)
    followers = bootstrap.model_followers(cfg)
    assert {h: f.uri for h, f in followers.items()} == {
        1: f"models:/{NAME}@champion",
        5: f"models:/{NAME}_h5@champion",
        20: f"models:/{NAME}_h20@champion",
    }
    assert [f.name for f in followers.values()] == [NAME, f"{NAME}_h5", f"{NAME}_h20"]
    assert {f.interval for f in followers.values()} == {cfg.serving.reload_interval_seconds}
    assert len({id(f.loader) for f in followers.values()}) == 3  # each polls in its own thread
    (only,) = bootstrap.model_followers(cfg, f"models:/{NAME}_h5/2", 0.5).items()
    assert (only[0], only[1].uri, only[1].interval) == (1, f"models:/{NAME}_h5/2", 0.5)


def test_a_single_horizon_config_serves_one_model_as_before(conf_dir: Path) -> None:
    cfg = load_config(conf_dir)
    ((horizon, follower),) = bootstrap.model_followers(cfg).items()
    assert (horizon, follower.uri) == (cfg.model.target.horizon, cfg.tracking.champion_uri)


def test_slots_are_one_model_per_horizon() -> None:
    with pytest.raises(ValueError, match="at least one model"):
        Slots([])
    with pytest.raises(ValueError, match="one model per horizon"):
        Slots([Slot(5, ModelHolder()), Slot(5, ModelHolder())])
    with pytest.raises(ValueError, match="at least one model"):
        create_app({})
