"""Optional bearer-token authentication (``serving.api_token_env``).

With the named environment variable set, ``/predict``, ``/model`` and ``/metrics`` answer 401
without ``Authorization: Bearer <token>``; ``/health`` and ``/ready`` stay open. Unset or
empty, nothing changes. The OpenAPI document shows the scheme only when it is on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient
from support import request_bars

from pipeline.cli import main
from pipeline.domain import LoadedModel
from pipeline.serving.api import create_app
from pipeline.settings import ServingConfig

VARIABLE = "STOCKPIPE_TEST_API_TOKEN"
TOKEN = "s3cret-token"
PROTECTED = [("POST", "/predict"), ("GET", "/model"), ("GET", "/metrics")]


class Zeros:
    def predict(self, frame: Any) -> np.ndarray[Any, Any]:
        return np.zeros(len(frame))


def loaded() -> LoadedModel:
    return LoadedModel(predictor=Zeros(), name="m", version="1", warmup=2, horizon=1)


def call(client: TestClient, method: str, path: str, **headers: str) -> Any:
    body = {"bars": request_bars(8)} if method == "POST" else None
    return client.request(method, path, json=body, headers=headers)


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv(VARIABLE, TOKEN)
    return TestClient(create_app(loaded(), serving=ServingConfig(api_token_env=VARIABLE)))


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer ", TOKEN],
)
def test_protected_routes_refuse_a_missing_or_wrong_token(
    guarded: TestClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    response = call(guarded, method, path, **headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert f"${VARIABLE}" in response.json()["detail"] and TOKEN not in response.text


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_routes_answer_with_the_token(
    guarded: TestClient, method: str, path: str
) -> None:
    response = call(guarded, method, path, authorization=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.text


def test_probes_stay_open_and_refusals_are_counted(guarded: TestClient) -> None:
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/ready").status_code == 200
    assert call(guarded, "POST", "/predict").status_code == 401
    metrics = guarded.get("/metrics", headers={"authorization": f"bearer {TOKEN}"})  # any case
    assert 'stockpipe_http_errors_total{status="401"} 1.0' in metrics.text


@pytest.mark.parametrize("value", [None, ""])
def test_no_token_no_authentication(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(VARIABLE, raising=False)
    else:
        monkeypatch.setenv(VARIABLE, value)  # set but empty: off, not "the empty token"
    client = TestClient(create_app(loaded(), serving=ServingConfig(api_token_env=VARIABLE)))
    for method, path in PROTECTED:
        assert call(client, method, path).status_code == 200
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


def test_the_openapi_document_shows_the_scheme_where_it_applies(guarded: TestClient) -> None:
    document = guarded.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": f"the value of ${VARIABLE} on the server",
    }
    paths = document["paths"]
    for method, path in PROTECTED:
        operation = paths[path][method.lower()]
        assert operation["security"] == [{"bearer": []}]
        assert "401" in operation["responses"]
    for path in ("/health", "/ready"):
        assert "security" not in paths[path]["get"] and "401" not in paths[path]["get"]["responses"]


def test_serve_reads_the_token_variable_named_in_serving_yaml(
    conf_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """conf/base/serving.yaml names STOCKPIPE_API_TOKEN: set, `stockpipe serve` requires it."""
    import pipeline.tracking.mlflow_adapter as adapter

    monkeypatch.setenv("STOCKPIPE_API_TOKEN", TOKEN)
    served: dict[str, FastAPI] = {}
    monkeypatch.setattr(adapter.MlflowModelLoader, "load", lambda self, uri: loaded())
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app))
    result = CliRunner().invoke(main, ["serve", "--config", str(conf_dir)])
    assert result.exit_code == 0, result.output
    with TestClient(served["app"]) as client:  # the lifespan stops the model follower
        assert client.get("/ready").status_code in (200, 503)  # open either way
        assert call(client, "GET", "/metrics").status_code == 401
        assert call(client, "GET", "/metrics", authorization=f"Bearer {TOKEN}").status_code == 200
