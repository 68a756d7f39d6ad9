"""The ticker rule gives one answer in Python (config, CLI) and in Polars (files, the
contract, the API): each case's expected result is written out by hand."""

from __future__ import annotations

import polars as pl
import pytest

from pipeline.data.rules import RULES, VALID_TICKER
from pipeline.data.tickers import invalid, normalise_ticker, normalised

CASES: list[tuple[str, str | None]] = [  # (as written, normalised or None when invalid)
    ("NVDA", "NVDA"),
    (" nvda\t", "NVDA"),
    ("NVDA\n", "NVDA"),
    ("brk-b", "BRK-B"),
    ("^gspc", "^GSPC"),
    ("eurusd=x", "EURUSD=X"),
    ("7203.t", "7203.T"),
    ("A" * 32, "A" * 32),
    ("A" * 33, None),
    ("", None),
    ("NV DA", None),
    ("NVDA\x00", None),
    ("\u202eNVDA", None),  # right-to-left override
    ("NVDA\u00a0", None),  # no-break space: not ASCII whitespace
    ("NVDA\x1f", None),  # Python's strip() would remove it, Polars' would not
    ("\u017fpy", None),  # long s: Unicode upper-cases it to S
    ("nvd\u0131", None),  # dotless i: upper-cases to I
    ("\uff21", None),  # fullwidth A
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_python_and_polars_agree_with_the_written_answer(raw: str, expected: str | None) -> None:
    try:
        python: str | None = normalise_ticker(raw)
    except ValueError:
        python = None
    frame = pl.DataFrame({"t": [raw]}).select(
        n=normalised(pl.col("t")),
        bad=invalid(normalised(pl.col("t"))),
        bad_raw=invalid(pl.col("t")),
    )
    assert python == expected
    assert frame["bad"].item() is (expected is None) and frame["bad_raw"].item() is (
        expected is None
    )
    if expected is not None:
        assert frame["n"].item() == expected


def test_the_contract_rule_leaves_empty_tickers_to_the_empty_rule() -> None:
    frame = pl.DataFrame({"ticker": ["NVDA", " nvda", "", "   ", None, "NVDA\x00"]})
    (rule,) = [r for r in RULES if r.message == VALID_TICKER]
    broken = frame.select(rule.broken)["ticker"].to_list()
    assert broken == [False, False, False, False, False, True]
