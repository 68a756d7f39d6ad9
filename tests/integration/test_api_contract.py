"""`POST /predict` holds bars to the files' data contract and never answers 500 for bad input.

The equivalence test sends the same broken bars as a request, a CSV file and a parquet file
and expects the same messages, each located its own way: bars[i], line i+2, row i.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from support import request_bars

from pipeline.data.readers import read_file
from pipeline.domain import LoadedModel
from pipeline.errors import DataError
from pipeline.serving.api import create_app

NAN, INF = math.nan, math.inf


class Fixed:
    """A predictor returning ``value`` for every row (or raising it, if it is an exception)."""

    def __init__(self, value: float | Exception = 0.0) -> None:
        self.value = value

    def predict(self, frame: Any) -> np.ndarray[Any, Any]:
        if isinstance(self.value, Exception):
            raise self.value
        return np.full(len(frame), self.value)


def client_for(predictor: Any = None, benchmark: str | None = None) -> TestClient:
    model = LoadedModel(
        predictor=predictor or Fixed(),
        name="m",
        version="1",
        warmup=2,
        horizon=1,
        benchmark=benchmark,
    )
    return TestClient(create_app(model), raise_server_exceptions=False)


def bars(n: int = 8, **extra: Any) -> list[dict[str, Any]]:
    return request_bars(n, **extra)


def post(client: TestClient, payload: Any, **headers: str) -> Any:
    """POST raw JSON as Python writes it: NaN and Infinity included, as clients send them."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post(
        "/predict", content=body, headers={"content-type": "application/json", **headers}
    )


BROKEN = [  # (index of the bar, its changes, one message the contract must give)
    (3, {"high": NAN}, "column 'high': prices must be finite and > 0: 1 row(s) at bars[3]"),
    (3, {"close": INF}, "column 'close': prices must be finite and > 0: 1 row(s) at bars[3]"),
    (0, {"open": -INF}, "column 'open': prices must be finite and > 0: 1 row(s) at bars[0]"),
    (3, {"high": 1e308}, "column 'high': prices must be between 1e-12 and 1e+15: 1 row(s)"),
    (3, {"high": 8.0}, "column 'high': high must be >= max(open, close): 1 row(s) at bars[3]"),
    (3, {"volume": NAN}, "column 'volume': volume must be finite and >= 0: 1 row(s) at bars[3]"),
    (
        3,
        {"date": "2024-01-04"},
        "column 'date': duplicate (ticker, date): 2 row(s) at bars[2] ('2024-01-04')",
    ),
    (3, {"ticker": ""}, "column 'ticker': ticker must not be empty: 1 row(s) at bars[3]"),
    (
        7,
        {"date": "9999-12-31"},
        "column 'date': dates must be between 1800-01-01 and 2199-12-31: 1 row(s) at bars[7]",
    ),
]


@pytest.mark.parametrize(("index", "changes", "message"), BROKEN)
def test_request_gets_the_file_contract_messages_as_422(
    tmp_path: Path, index: int, changes: dict[str, Any], message: str
) -> None:
    sent = bars()
    sent[index].update(changes)
    response = post(client_for(), {"bars": sent})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert f"request: {message}" in detail

    # The same bars as files: the same rules and wording, located as each format counts.
    frame = pl.DataFrame(sent).with_columns(pl.col("date").str.to_date())
    for path, where in (
        (tmp_path / "bars.csv", lambda i: f"line {i + 2}"),
        (tmp_path / "bars.parquet", lambda i: f"row {i}"),
    ):
        if path.suffix == ".csv":
            frame.write_csv(path)
        else:
            frame.write_parquet(path)
        with pytest.raises(DataError) as err:
            read_file(path)
        expected = re.sub(r"bars\[(\d+)\]", lambda m, at=where: at(int(m.group(1))), detail)
        assert str(err.value) == expected.replace("request:", f"{path}:")


def test_the_issue_example_message_exactly() -> None:
    sent = bars()
    sent[3]["high"] = sent[3]["low"] - 1  # high < low
    response = post(client_for(), {"bars": sent})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "request: column 'high': high must be >= max(open, close): 1 row(s) at bars[3]"
    )


def test_a_duplicate_bar_is_refused_instead_of_changing_the_prediction() -> None:
    sent = bars()
    response = post(client_for(), {"bars": [*sent, sent[-1]]})
    assert response.status_code == 422
    assert "duplicate (ticker, date): 2 row(s) at bars[7] ('2024-01-09'), bars[8]" in response.text


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 400, "request: body is not valid JSON"),
        (b'{"bars": [1' + b"0" * 5000 + b"]}", 400, "request: body is not valid JSON"),
        ([1, 2], 422, "request: body: Input should be"),
        ({"bars": []}, 422, "request: bars: List should have at least 1 item"),
        ({"bars": bars(), "horizon": 5}, 422, "request: horizon: Extra inputs are not permitted"),
        ({"bars": bars(extra=1)}, 422, "request: bars[0].extra: Extra inputs are not permitted"),
        (
            {"bars": bars(ticker=NAN)},
            422,
            "request: bars[0].ticker: Input should be a valid string",
        ),
        (
            {"bars": bars(close="10.5")},
            422,
            "request: bars[0].close: Input should be a valid number",
        ),
        (
            {"bars": bars(volume=True)},
            422,
            "request: bars[0].volume: Input should be a valid number",
        ),
        ({"bars": bars(date=20240102)}, 422, "bars[0].date: Value error, a date must be text"),
        ({"bars": bars(date="2024-13-01")}, 422, "request: bars[0].date: Input should be a valid"),
    ],
)
def test_malformed_bodies_get_a_clean_4xx(body: Any, status: int, message: str) -> None:
    response = post(client_for(), body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_late_errors_are_located_in_the_whole_request() -> None:
    sent = bars(2500)  # validated in chunks; the index must still be the request's
    sent[2100]["close"] = "x"
    response = post(client_for(), {"bars": sent})
    assert response.status_code == 422
    assert response.json()["detail"] == "request: bars[2100].close: Input should be a valid number"


def test_content_type_must_be_json_or_absent() -> None:
    client = client_for()
    body = json.dumps({"bars": bars()}).encode()
    refused = client.post("/predict", content=body, headers={"content-type": "text/plain"})
    assert refused.status_code == 415 and "application/json" in refused.json()["detail"]
    assert client.post("/predict", content=body).status_code == 200


def test_bench_close_is_held_to_the_price_rules_where_given() -> None:
    client = client_for(benchmark="SPY")
    sent = bars(bench_close=400.0)
    sent[2]["bench_close"] = NAN
    response = post(client, {"bars": sent})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "request: column 'bench_close': prices must be finite and > 0: 1 row(s) at bars[2]"
    )
    sent[2]["bench_close"] = None  # no benchmark quote that day: allowed
    assert post(client, {"bars": sent}).status_code == 200
    missing = post(client, {"bars": bars()})
    assert missing.status_code == 422 and "needs bench_close (SPY)" in missing.text


@pytest.mark.parametrize(
    ("predictor", "status", "message"),
    [
        (Fixed(RuntimeError("boom")), 500, "model m v1 failed to predict: RuntimeError: boom"),
        (Fixed(NAN), 422, "is not finite for ticker(s) ['ACME']"),
        (Fixed(INF), 422, "is not finite for ticker(s)"),
    ],
)
def test_a_failing_model_gets_a_json_error_not_a_traceback(
    predictor: Fixed, status: int, message: str
) -> None:
    response = post(client_for(predictor), {"bars": bars()})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["detail"] and "Traceback" not in response.text


def test_valid_bars_in_any_order_predict_for_the_latest_date() -> None:
    response = post(client_for(Fixed(0.25)), {"bars": bars()[::-1]})
    assert response.status_code == 200, response.text
    assert response.json() == [
        {
            "ticker": "ACME",
            "as_of_date": "2024-01-09",
            "horizon": 1,
            "prediction": 0.25,
            "model_name": "m",
            "model_version": "1",
            "warnings": [],  # always present: the contract's warnings about this ticker's bars
        }
    ]


def test_an_unexpected_error_is_a_json_500(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> None:
        raise KeyError("bug")

    monkeypatch.setattr("pipeline.serving.api.parse_bars", broken)
    response = post(client_for(), {"bars": bars()})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (KeyError)"}
