"""The OpenAPI document tells the truth about the service, and schemathesis holds it to it.

``POST /predict`` reads its body by hand (to bound it while it streams in), so its request
body, its error statuses and ``/metrics``' text format are declared explicitly
(``pipeline.serving.openapi``). schemathesis generates requests from the document (valid and
invalid bodies, with and without the bearer token) against the app over ASGI, and checks that
no answer is a 5xx and every answer's status, content type and body are the documented ones.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import request_bars

from pipeline.domain import LoadedModel
from pipeline.serving.api import create_app
from pipeline.settings import ServingConfig

VARIABLE = "STOCKPIPE_TEST_OPENAPI_TOKEN"
TOKEN = "openapi-token"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class Zeros:
    def predict(self, frame: Any) -> np.ndarray[Any, Any]:
        return np.zeros(len(frame))


def small_app() -> FastAPI:
    """A fixed model answering 0 (warm-up 2) behind the token; small limits keep it quick."""
    model = LoadedModel(predictor=Zeros(), name="m", version="1", warmup=2, horizon=1)
    limits = ServingConfig(max_body_bytes=64 * 1024, max_tickers=5, api_token_env=VARIABLE)
    return create_app(model, serving=limits)


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.setenv(VARIABLE, TOKEN)
    return small_app()


@pytest.mark.slow  # schemathesis: up to 50 generated requests per operation and mode
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_conforms_to_the_document(app: FastAPI, mode: GenerationMode) -> None:
    """Up to 50 generated requests per operation and mode. (A loop over the operations, not
    ``schemathesis.pytest.from_fixture``: its lazy loader sets pytest 9's private node ids.)"""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/metrics", "/health", "/ready"}
    for operation in operations:
        if mode == GenerationMode.NEGATIVE and not operation.body:
            continue  # nothing to get wrong in a GET without parameters

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=50,
            deadline=None,
            database=None,  # no .hypothesis/ left in the checkout
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def call(case: Any) -> None:
            # The token on every call: the operations are reached, not stopped at the 401.
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

        call()


def test_predict_documents_its_body_errors_and_security(app: FastAPI) -> None:
    document = TestClient(app).get("/openapi.json").json()
    predict = document["paths"]["/predict"]["post"]
    body = predict["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictRequest"
    }
    schemas = document["components"]["schemas"]
    bars = schemas["PredictRequest"]["properties"]["bars"]
    assert bars["items"] == {"$ref": "#/components/schemas/Bar"} and bars["minItems"] == 1
    # open/high/low/volume are optional: a model trained on close-only data reads the close
    assert set(schemas["Bar"]["required"]) == {"ticker", "date", "close"}
    errors = {"400", "401", "408", "413", "415", "422", "500", "503", "504"}
    assert errors | {"200"} == set(predict["responses"])
    for status in errors:
        content = predict["responses"][status]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert predict["security"] == [{"bearer": []}]
    ok = predict["responses"]["200"]["content"]["application/json"]["schema"]
    prediction = schemas[ok["items"]["$ref"].rsplit("/", 1)[1]]
    assert prediction["properties"]["warnings"]["items"] == {"type": "string"}


def test_metrics_are_documented_and_served_as_text(app: FastAPI) -> None:
    client = TestClient(app)
    metrics = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert list(metrics["responses"]["200"]["content"]) == ["text/plain"]
    served = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert served.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"{", {}, 400),
        (b"x" * (64 * 1024 + 1), {}, 413),
        (json.dumps({"bars": request_bars(8)}).encode(), {"content-type": "text/csv"}, 415),
        (json.dumps({"bars": request_bars(1)}).encode(), {}, 422),
    ],
)
def test_the_errors_predict_answers_are_the_documented_ones(
    app: FastAPI, content: bytes, headers: dict[str, str], status: int
) -> None:
    """What schemathesis cannot reach with valid JSON: each status documented, body as said."""
    client = TestClient(app)
    documented = client.get("/openapi.json").json()["paths"]["/predict"]["post"]["responses"]
    sent = {"content-type": "application/json", "Authorization": f"Bearer {TOKEN}", **headers}
    response = client.post("/predict", content=content, headers=sent)
    assert response.status_code == status, response.text
    assert str(status) in documented
    assert list(response.json()) == ["detail"] and isinstance(response.json()["detail"], str)
