"""Each command lists the shared options it uses, and only those."""

from __future__ import annotations

import re
from typing import Any

import pytest
from click.testing import CliRunner

import pipeline.data.yahoo as yahoo
from pipeline.cli import main

SHARED = {"--config", "--env", "--data", "--snapshot", "--tracking-uri", "--seed"}


@pytest.fixture(autouse=True)
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should an option be accepted after all, fetch must not reach for Yahoo."""

    def guard(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("fetch ran: the option was accepted")

    monkeypatch.setattr(yahoo, "_yf_download", guard)


def _shared_options(*command: str) -> set[str]:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    return set(re.findall(r"^\s+(--[a-z-]+)", result.output, re.MULTILINE)) & SHARED


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (("fetch",), {"--config", "--env"}),
        (("validate",), {"--config", "--env", "--data", "--snapshot"}),
        (("data", "list"), {"--config", "--env"}),
        (("data", "import"), {"--config", "--env"}),
        (("data", "rebuild"), {"--config", "--env"}),
        *[((name,), SHARED) for name in ("train", "worker", "score", "folds", "features")],
        (("backtest",), SHARED),
    ],
)
def test_commands_list_the_options_they_use(command: tuple[str, ...], expected: set[str]) -> None:
    assert _shared_options(*command) == expected


@pytest.mark.parametrize(
    "args",
    [
        ["fetch", "--tickers", "NVDA", "--seed", "3"],
        ["fetch", "--tickers", "NVDA", "--snapshot", "x"],
        ["validate", "--tracking-uri", "sqlite:///x.db"],
    ],
)
def test_an_option_a_command_does_not_use_is_refused(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "No such option" in result.output
