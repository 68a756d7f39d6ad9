"""`POST /predict` applies the one ticker rule and hands the contract's warnings to the client.

Tickers are normalised (``nvda `` is ``NVDA``) before anything counts or logs them, and a
ticker that breaks the rule (``pipeline.data.tickers``) is a 422 naming the rule and the bars.
A suspicious but possible input (a price jump) is served, with the contract's warning in the
``warnings`` of that ticker's predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from support import request_bars

from pipeline.data.tickers import RULE
from pipeline.domain import LoadedModel
from pipeline.serving.api import create_app
from pipeline.settings import ServingConfig


class Zeros:
    def predict(self, frame: Any) -> np.ndarray[Any, Any]:
        return np.zeros(len(frame))


class Recorded:
    """A prediction log keeping what it is given."""

    def __init__(self) -> None:
        self.frames: list[pl.DataFrame] = []

    def record(self, frame: pl.DataFrame) -> int:
        self.frames.append(frame)
        return frame.height


def client_for(record: Recorded | None = None, **limits: Any) -> TestClient:
    model = LoadedModel(predictor=Zeros(), name="m", version="1", warmup=2, horizon=1)
    app = create_app(model, serving=ServingConfig(**limits), record=record)
    return TestClient(app, raise_server_exceptions=False)


def test_case_and_spaces_name_one_ticker_everywhere() -> None:
    log = Recorded()
    with client_for(log, max_tickers=1) as client:
        sent = request_bars(8, ticker="nvda")
        for i, spelling in enumerate(["NVDA ", " Nvda", "NVDA\t"]):  # the same ticker
            sent[i]["ticker"] = spelling
        response = client.post("/predict", json={"bars": sent})
    assert response.status_code == 200, response.text  # one ticker, within max_tickers=1
    assert [row["ticker"] for row in response.json()] == ["NVDA"]
    assert pl.concat(log.frames)["ticker"].to_list() == ["NVDA"]  # logged as NVDA only


def test_one_bar_in_two_spellings_is_a_duplicate() -> None:
    sent = request_bars(6, ticker="NVDA")
    sent.append({**sent[-1], "ticker": "nvda"})  # the same (ticker, date) again
    response = client_for().post("/predict", json={"bars": sent})
    assert response.status_code == 422
    assert (
        "duplicate (ticker, date): 2 row(s) at bars[5] ('2024-01-07'), bars[6]"
        in (response.json()["detail"])
    )


@pytest.mark.parametrize(
    ("ticker", "shown"),
    [
        ("NVDA\x00", r"('NVDA\x00')"),  # escaped: nothing invisible reaches a log or a terminal
        ("NVDA\u202e", r"('NVDA\u202e')"),
        ("NV DA", "('NV DA')"),
        ("A" * 10_000, "('" + "A" * 40 + "')"),  # cut: never echoed whole
    ],
)
def test_a_ticker_breaking_the_rule_is_a_422_naming_rule_and_bars(ticker: str, shown: str) -> None:
    sent = request_bars(8, ticker="NVDA")
    sent[3]["ticker"] = sent[5]["ticker"] = ticker
    response = client_for().post("/predict", json={"bars": sent})
    assert response.status_code == 422, response.text
    # The contract's wording for files, located in the request.
    assert response.json()["detail"] == (
        f"request: column 'ticker': ticker must be {RULE}: 2 row(s) at bars[3] {shown}, "
        f"bars[5] {shown}"
    )


def test_many_bad_tickers_are_counted_not_all_shown() -> None:
    sent = request_bars(8, ticker="NVDA")
    for bar in sent:
        bar["ticker"] = "NVDA\x00"
    detail = client_for().post("/predict", json={"bars": sent}).json()["detail"]
    assert "8 row(s) at bars[0]" in detail and detail.endswith("(+3 more)")


def test_a_price_jump_is_served_with_the_contracts_warning() -> None:
    sent = request_bars(8, ticker="JUMP") + request_bars(8, ticker="CALM")
    sent[7].update(open=1e15, high=1e15, low=1e15, close=1e15)  # JUMP's last bar
    sent = sent[::-1]  # the warning names the bar's index in the request as sent: bars[8]
    response = client_for().post("/predict", json={"bars": sent})
    assert response.status_code == 200, response.text
    by_ticker = {row["ticker"]: row["warnings"] for row in response.json()}
    assert by_ticker["CALM"] == []
    assert by_ticker["JUMP"] == [
        "request: column 'close': daily move beyond |log return| 0.5 (unadjusted split?): "
        "1 row(s) at bars[8]"
    ]


def test_warnings_follow_the_served_contract_policy() -> None:
    from pipeline.data.validation import ContractPolicy

    sent = request_bars(8, ticker="GAP")
    sent[-1]["date"] = "2024-03-01"  # weeks after the bar before it
    model = LoadedModel(predictor=Zeros(), name="m", version="1", warmup=2, horizon=1)
    strict = TestClient(create_app(model, policy=ContractPolicy(max_gap_business_days=5)))
    lenient = TestClient(create_app(model, policy=ContractPolicy(max_gap_business_days=100)))
    (warned,) = strict.post("/predict", json={"bars": sent}).json()
    (clean,) = lenient.post("/predict", json={"bars": sent}).json()
    assert warned["warnings"] == [
        "request: column 'date': gap of more than 5 business days: 1 row(s) at bars[7] "
        "('2024-03-01')"
    ]
    assert clean["warnings"] == []
