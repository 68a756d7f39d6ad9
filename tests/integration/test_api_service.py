"""The service around `POST /predict` (issue 12): readiness, the model description, metrics,
hot reload, request logs.

The model is followed through hand-written fakes of the loader and the version resolver (the
real MLflow pair is exercised by tests/e2e/test_hot_reload.py); ``ModelFollower.poll()`` is
driven by hand, so reload behaviour is tested without threads racing a clock.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import ValidationError
from support import nvda_rows, wait_until, wait_until_ready
from support import request_bars as bars

from pipeline.cli import main
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import LoadedModel
from pipeline.errors import TrackingError
from pipeline.logging_setup import JsonFormatter
from pipeline.serving.api import create_app
from pipeline.serving.holder import feature_names
from pipeline.serving.reload import ModelFollower
from pipeline.settings import ServingConfig

URI = "models:/M@champion"
DEADLINE = 30.0  # seconds a background load may take before a test gives up (never reached)


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


def version(number: str, predictor: Any = None) -> LoadedModel:
    """Registered version ``number`` of model M: predicts ``number`` (as a float) by default."""
    return LoadedModel(
        predictor=predictor or Constant(float(number)),
        name="M",
        version=number,
        warmup=2,
        horizon=1,
        run_id=f"run-{number}",
        tags={"candidate": "ridge", "data_sha256": "abc"},
    )


@dataclasses.dataclass
class FakeRegistry:
    """A registry of versions and one alias: the loader and the resolver of the service.

    ``gate`` (when set) holds every load until opened; versions in ``broken`` fail to load;
    ``down`` makes every call fail, as an unreachable tracking server would.
    """

    versions: dict[str, LoadedModel]
    champion: str = "1"
    gate: threading.Event | None = None
    broken: set[str] = dataclasses.field(default_factory=set)
    down: bool = False
    loads: list[str] = dataclasses.field(default_factory=list)
    resolves: int = 0

    def follows(self, model_uri: str) -> str | None:
        return "champion" if model_uri.endswith("@champion") else None

    def resolve(self, model_uri: str) -> str:
        self.resolves += 1
        if self.down:
            raise TrackingError("tracking server http://mlflow:5000 is unreachable")
        return self.champion if self.follows(model_uri) else model_uri.rsplit("/", 1)[1]

    def load(self, model_uri: str) -> LoadedModel:
        if self.gate is not None:
            assert self.gate.wait(DEADLINE)
        number = self.resolve(model_uri)
        self.loads.append(number)
        if number in self.broken:
            raise TrackingError(f"cannot load model {model_uri}: artifact missing")
        return self.versions[number]


def follower(registry: FakeRegistry, uri: str = URI) -> ModelFollower:
    # A long interval: tests call poll() themselves; the thread only does the first load.
    return ModelFollower(registry, registry, uri, interval=3600)


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry({n: version(n) for n in ("1", "2", "3")})


@pytest.fixture
def served(registry: FakeRegistry) -> Iterator[tuple[TestClient, ModelFollower]]:
    """A started app (lifespan on) whose first model, v1, is loaded."""
    model = follower(registry)
    with TestClient(create_app(model)) as client:
        wait_until_ready(client)
        yield client, model


# --------------------------------------------------------------------------- readiness


def test_ready_is_503_until_the_background_load_ends_and_health_answers_at_once(
    registry: FakeRegistry,
) -> None:
    registry.gate = threading.Event()  # the first load blocks until the test opens it
    with TestClient(create_app(follower(registry))) as client:
        assert client.get("/health").json() == {
            "status": "ok",
            "ready": False,
            "model": None,
            "version": None,
            "warmup_rows": None,
        }
        not_yet = client.get("/ready")
        assert not_yet.status_code == 503 and not_yet.json()["status"] == "loading"
        assert client.get("/model").status_code == 503
        registry.gate.set()
        wait_until_ready(client)
        assert client.get("/ready").json() == {"status": "ready", "version": "1"}
        assert client.get("/health").json()["version"] == "1"


def test_a_prediction_arriving_during_the_first_load_waits_for_it(
    registry: FakeRegistry,
) -> None:
    registry.gate = threading.Event()
    with TestClient(create_app(follower(registry))) as client:
        answer: dict[str, Any] = {}
        post = threading.Thread(
            target=lambda: answer.update(r=client.post("/predict", json={"bars": bars()}))
        )
        post.start()
        post.join(0.3)
        assert post.is_alive()  # waiting for the model, not refused
        registry.gate.set()
        post.join(DEADLINE)
        assert answer["r"].status_code == 200 and answer["r"].json()[0]["model_version"] == "1"


def test_a_model_that_never_loads_keeps_ready_503_and_predict_503_with_the_reason(
    registry: FakeRegistry,
) -> None:
    registry.down = True
    limits = ServingConfig(request_timeout_seconds=0.2)
    with TestClient(create_app(follower(registry), serving=limits)) as client:
        wait_until(  # the first attempt failed
            lambda: "unreachable" in client.get("/ready").text, DEADLINE, "the failed load"
        )
        assert client.get("/ready").status_code == 503
        refused = client.post("/predict", json={"bars": bars()})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert client.get("/health").status_code == 200  # alive all the same


# --------------------------------------------------------------------------- GET /model


def test_model_describes_the_served_version(ridge_model: LoadedModel) -> None:
    model = dataclasses.replace(
        ridge_model,
        name="StocksPredictionModel",
        version="7",
        run_id="abc123",
        tags={"data_sha256": "f00", "git_commit": "c0ffee", "candidate": "ridge"},
    )
    registry = FakeRegistry({"7": model}, champion="7")
    with TestClient(create_app(follower(registry))) as client:
        wait_until_ready(client)
        body = client.get("/model").json()
    expected_features = list(ridge_model.predictor.named_steps["features"].get_feature_names_out())
    assert expected_features and body["features"] == expected_features
    assert {k: body[k] for k in ("name", "version", "alias", "run_id", "horizon")} == {
        "name": "StocksPredictionModel",
        "version": "7",
        "alias": "champion",
        "run_id": "abc123",
        "horizon": 1,
    }
    assert body["warmup_rows"] == ridge_model.warmup and body["benchmark"] is None
    assert body["tags"] == {"data_sha256": "f00", "git_commit": "c0ffee", "candidate": "ridge"}
    assert body["uri"] == URI


def test_a_fixed_model_has_no_alias_and_a_foreign_predictor_no_features() -> None:
    client = TestClient(create_app(version("4")))
    body = client.get("/model").json()
    assert body["alias"] is None and body["version"] == "4" and body["features"] == []
    assert feature_names(version("4")) == ()


# --------------------------------------------------------------------------- hot reload


def test_a_promotion_is_swapped_in_by_the_next_poll(
    served: tuple[TestClient, ModelFollower], registry: FakeRegistry
) -> None:
    client, model = served
    assert model.poll() is False and registry.loads == ["1"]  # nothing moved: no load
    registry.champion = "2"
    assert model.poll() is True
    assert client.get("/model").json()["version"] == "2"
    (pred,) = client.post("/predict", json={"bars": bars()}).json()
    assert pred["model_version"] == "2" and pred["prediction"] == 2.0


def test_a_version_that_fails_to_load_leaves_the_old_one_serving_and_is_retried(
    served: tuple[TestClient, ModelFollower], registry: FakeRegistry
) -> None:
    client, model = served
    registry.broken.add("3")
    registry.champion = "3"
    assert model.poll() is False and model.poll() is False  # tried on every poll
    assert registry.loads == ["1", "3", "3"] and model.holder.failures == 2
    assert "artifact missing" in (model.holder.last_error or "")
    assert client.get("/model").json()["version"] == "1"
    assert client.post("/predict", json={"bars": bars()}).json()[0]["model_version"] == "1"
    assert "stockpipe_model_reload_failures_total 2.0" in client.get("/metrics").text
    registry.broken.clear()  # the artifact is back: the next poll loads it
    assert model.poll() is True and client.get("/model").json()["version"] == "3"


def test_an_unreachable_registry_is_a_counted_failure_not_a_crash(
    served: tuple[TestClient, ModelFollower], registry: FakeRegistry
) -> None:
    client, model = served
    registry.down = True
    assert model.poll() is False and model.holder.failures == 1
    assert client.post("/predict", json={"bars": bars()}).status_code == 200


def test_a_fixed_version_is_loaded_once_and_never_polled(registry: FakeRegistry) -> None:
    model = follower(registry, "models:/M/2")
    assert not model.follows
    assert model.poll() is True and model.poll() is False
    registry.champion = "3"
    assert model.poll() is False
    assert registry.loads == ["2"] and registry.resolves == 1  # the load's own resolve only


def test_a_request_in_flight_finishes_on_the_model_it_started_with(
    registry: FakeRegistry,
) -> None:
    gate = threading.Event()
    slow_v1 = Constant(1.0, gate)
    registry.versions["1"] = version("1", slow_v1)
    model = follower(registry)
    with TestClient(create_app(model)) as client:
        wait_until_ready(client)
        first: dict[str, Any] = {}
        post = threading.Thread(
            target=lambda: first.update(r=client.post("/predict", json={"bars": bars()}))
        )
        post.start()
        assert slow_v1.started.wait(DEADLINE)  # the request is inside v1's predict
        registry.champion = "2"
        assert model.poll() is True  # swapped while that request runs
        (second,) = client.post("/predict", json={"bars": bars()}).json()
        assert second["model_version"] == "2"
        gate.set()
        post.join(DEADLINE)
    (pred,) = first["r"].json()
    assert first["r"].status_code == 200 and (pred["model_version"], pred["prediction"]) == (
        "1",
        1.0,
    )


def test_the_reload_interval_is_validated_in_config_and_on_the_command_line() -> None:
    assert ServingConfig().reload_interval_seconds == 30
    with pytest.raises(ValidationError, match="reload_interval_seconds"):
        ServingConfig(reload_interval_seconds=0)
    result = CliRunner().invoke(main, ["serve", "--reload-interval", "0"])
    assert result.exit_code == 2 and "--reload-interval" in result.output
    with pytest.raises(ValueError, match="reload interval"):
        ModelFollower(FakeRegistry({}), FakeRegistry({}), URI, interval=0)


# --------------------------------------------------------------------------- metrics, logs


def test_metrics_count_requests_predictions_errors_and_the_served_version(
    served: tuple[TestClient, ModelFollower],
) -> None:
    client, _ = served
    assert client.post("/predict", json={"bars": bars()}).status_code == 200
    assert client.post("/predict", json={"bars": bars(1)}).status_code == 422  # too short
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for line in (
        'stockpipe_predictions_total{model_version="1"} 1.0',
        'stockpipe_http_errors_total{status="422"} 1.0',
        'stockpipe_model_version{model_name="M"} 1.0',
        'stockpipe_request_duration_seconds_count{endpoint="/predict",method="POST"} 2.0',
        "stockpipe_model_reloads_total 1.0",
        "stockpipe_model_reload_failures_total 0.0",
    ):
        assert line in text, line
    (reloaded,) = [ln for ln in text.splitlines() if ln.startswith("stockpipe_model_last_rel")]
    assert float(reloaded.split()[-1]) > 1.7e9  # unix seconds (after 2023)
    assert client.get("/no/such/path").status_code == 404
    text = client.get("/metrics").text
    assert 'stockpipe_http_errors_total{status="404"} 1.0' in text
    assert 'endpoint="other",method="GET"' in text  # unknown paths share one label value


def test_each_app_counts_its_own_requests() -> None:
    one, two = TestClient(create_app(version("1"))), TestClient(create_app(version("2")))
    one.post("/predict", json={"bars": bars()})
    assert 'model_version="1"' in one.get("/metrics").text
    assert "stockpipe_predictions_total{" not in two.get("/metrics").text


def test_one_json_log_line_per_request_with_id_latency_version_and_tickers(
    served: tuple[TestClient, ModelFollower], caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = served
    two_tickers = bars() + [{**b, "ticker": "BETA"} for b in bars()]
    with caplog.at_level(logging.INFO, logger="pipeline.serving.requests"):
        mine = client.post("/predict", json={"bars": two_tickers}, headers={"X-Request-ID": "r-1"})
        fresh = client.post("/predict", json={"bars": bars()}, headers={"X-Request-ID": "a b\n"})
    assert mine.headers["x-request-id"] == "r-1"
    assert len(fresh.headers["x-request-id"]) == 32  # an unsafe incoming id is replaced
    records = [r for r in caplog.records if r.name == "pipeline.serving.requests"]
    lines = [json.loads(JsonFormatter().format(r)) for r in records]
    assert [line["request_id"] for line in lines] == ["r-1", fresh.headers["x-request-id"]]
    first = lines[0]
    assert (first["method"], first["path"], first["status"]) == ("POST", "/predict", 200)
    assert first["tickers"] == 2 and first["model_version"] == "1"
    assert isinstance(first["latency_ms"], float) and first["latency_ms"] >= 0
    assert first["logger"] == "pipeline.serving.requests" and first["level"] == "INFO"


def test_bench_close_is_accepted_and_ignored_by_a_model_without_market_features(
    ridge_model: LoadedModel,
) -> None:
    client = TestClient(create_app(ridge_model))
    plain = nvda_rows(40).to_dicts()
    with_bench = [{**b, "bench_close": 400.0 + i} for i, b in enumerate(plain)]
    a, b = (client.post("/predict", json={"bars": x}) for x in (plain, with_bench))
    assert a.status_code == b.status_code == 200, b.text
    assert a.json() == b.json()


def test_concurrent_predictions_are_all_logged_in_the_warehouse(tmp_path: Path) -> None:
    """8 requests at once, one DuckDB prediction log: every one is served and logged (DuckDB
    refuses concurrent writers of one file in a process; the app writes one at a time)."""
    store = DuckDBStore(tmp_path / "warehouse.duckdb")
    limits = ServingConfig(max_concurrent_predictions=8)
    client = TestClient(create_app(version("1"), serving=limits, record=store))
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda i: client.post("/predict", json={"bars": bars(ticker=f"T{i}")}),
                range(8),
            )
        )
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    assert sorted(store.outcomes()["ticker"]) == [f"T{i}" for i in range(8)]


def test_serve_refuses_a_malformed_model_uri_before_starting(conf_dir: Path) -> None:
    args = ["serve", "--config", str(conf_dir), "--model-uri", "models:/M"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and "needs a version, an alias" in result.output
