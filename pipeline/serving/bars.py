"""The body of ``POST /predict``, turned into the canonical price frame the model reads.

Bytes are parsed by pydantic (JSON types only: no numbers as text, no booleans as numbers, no
unknown fields), bounded by the request limits, then held to the SAME data contract as files
(``check_contract`` with ``PriceSchema``, the pandera model), so a request breaking a rule gets
the rule's usual message, located at ``bars[i]``, the index in the request. JSON's NaN and
Infinity parse as floats and are refused by the contract's finiteness rule; absurdly large
prices by its range rule.

Bars are validated in chunks because pydantic holds the GIL while it works: one 16 MiB list
would freeze the event loop (and ``/health``) for the whole validation, a chunk only briefly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any

import polars as pl
from fastapi import HTTPException
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import from_json

# Imported with the app, not by the first request: pandera's import takes ~0.5 s.
from pipeline.data.contract import PriceSchema
from pipeline.data.validation import ContractPolicy, check_contract, list_item
from pipeline.errors import DataError
from pipeline.settings import ServingConfig

SOURCE = "request"  # how messages name the input, where a file's path would be
MAX_ERRORS_SHOWN = 5
CHUNK = 2000  # bars validated per GIL-holding pydantic call (a few milliseconds)
COLUMNS: dict[str, Any] = {
    "ticker": pl.String,
    "date": pl.Date,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
    "bench_close": pl.Float64,
}


def _text(value: Any) -> Any:
    # Without this, lax date parsing would read a number such as 20240131 as epoch seconds.
    if not isinstance(value, str):
        raise ValueError("a date must be text such as 2024-01-31")
    return value


class Bar(BaseModel):
    """One daily bar; values are checked by the data contract, not here."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ticker: str
    date: Annotated[dt.date, BeforeValidator(_text), Field(strict=False)]
    open: float
    high: float
    low: float
    close: float
    volume: float
    bench_close: float | None = None


class _Envelope(BaseModel):
    """The request: ``{"bars": [Bar, ...]}``, bars of one or more tickers in any order."""

    model_config = ConfigDict(extra="forbid", strict=True)

    bars: list[Any] = Field(min_length=1)


_BARS = TypeAdapter(list[Bar])


def _where(loc: Sequence[int | str]) -> str:
    """('bars', 3, 'high') -> 'bars[3].high'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "body"


def _invalid(exc: ValidationError, offset: int | None = None) -> HTTPException:
    """422 listing the first errors; ``offset`` is the index of a chunk's first bar."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    lines = []
    for e in errors[:MAX_ERRORS_SHOWN]:
        loc = e["loc"] if offset is None else ("bars", int(e["loc"][0]) + offset, *e["loc"][1:])
        # Inputs are never echoed back: they may be NaN, which JSON responses cannot carry.
        lines.append(f"{SOURCE}: {_where(loc)}: {e['msg']}")
    if len(errors) > MAX_ERRORS_SHOWN:
        lines.append(f"(+{len(errors) - MAX_ERRORS_SHOWN} more)")
    return HTTPException(422, "\n".join(lines))


def _check_breadth(frame: pl.DataFrame, limits: ServingConfig) -> None:
    counts = frame.group_by("ticker").len()
    if counts.height > limits.max_tickers:
        raise HTTPException(
            422,
            f"{SOURCE}: {counts.height} tickers; at most {limits.max_tickers} per request "
            "(serving.max_tickers)",
        )
    over = counts.filter(pl.col("len") > limits.max_bars_per_ticker).sort("ticker")
    if over.height:
        shown = dict(over.head(MAX_ERRORS_SHOWN).iter_rows())
        raise HTTPException(
            422,
            f"{SOURCE}: at most {limits.max_bars_per_ticker} bars per ticker "
            f"(serving.max_bars_per_ticker); got {shown}",
        )


def _validate(body: bytes) -> list[Bar]:
    try:
        data = from_json(body, allow_inf_nan=True)
    except ValueError as exc:
        raise HTTPException(400, f"{SOURCE}: body is not valid JSON: {exc}") from exc
    try:
        raw = _Envelope.model_validate(data).bars
    except ValidationError as exc:
        raise _invalid(exc) from exc
    bars: list[Bar] = []
    for start in range(0, len(raw), CHUNK):
        try:
            bars += _BARS.validate_python(raw[start : start + CHUNK])
        except ValidationError as exc:
            raise _invalid(exc, start) from exc
    return bars


def parse_bars(
    body: bytes, limits: ServingConfig, policy: ContractPolicy | None = None
) -> pl.DataFrame:
    """Canonical columns (plus ``bench_close``) sorted by ticker and date, or an HTTPException.

    The frame keeps ``row``, each bar's index in the request, for messages.
    """
    bars = _validate(body)
    frame = pl.DataFrame(
        {name: [getattr(b, name) for b in bars] for name in COLUMNS}, schema=COLUMNS
    ).with_row_index("row")
    _check_breadth(frame, limits)
    # Order does not matter in a request; sorting first leaves duplicates as the only way to
    # break the contract's "strictly increasing dates" rule.
    frame = frame.sort("ticker", "date", maintain_order=True)
    report = check_contract(frame, SOURCE, policy, list_item("bars"), PriceSchema)
    try:
        report.raise_for_errors()
    except DataError as exc:
        raise HTTPException(422, str(exc)) from exc
    report.log_warnings()
    return frame
