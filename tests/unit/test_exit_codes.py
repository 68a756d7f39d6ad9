"""Each CLI exit code has one meaning: bad input 2, monitor alert 3, tracking failure 4."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from pipeline.cli.common import handle_errors
from pipeline.errors import (
    EXIT_ALERT,
    EXIT_INPUT,
    EXIT_TRACKING,
    ConfigError,
    DataError,
    ModelError,
    TrackingError,
    TrackingUnavailableError,
)


def exit_code_of(exc: BaseException) -> int | str | None:
    @handle_errors
    def command() -> None:
        raise exc

    with pytest.raises(SystemExit) as stopped:
        command()
    return stopped.value.code


def test_the_codes_are_distinct() -> None:
    assert len({EXIT_INPUT, EXIT_ALERT, EXIT_TRACKING}) == 3
    assert (EXIT_INPUT, EXIT_ALERT, EXIT_TRACKING) == (2, 3, 4)  # documented in the README


@pytest.mark.parametrize(
    "exc", [DataError("x"), ConfigError("x"), ModelError("x"), TrackingError("no model named M")]
)
def test_bad_input_is_2(exc: Exception) -> None:
    assert exit_code_of(exc) == EXIT_INPUT


def test_tracking_unreachable_and_mlflow_failing_mid_run_are_4_not_the_alert_code() -> None:
    assert exit_code_of(TrackingUnavailableError("unreachable")) == EXIT_TRACKING
    assert exit_code_of(MlflowException("server died")) == EXIT_TRACKING


def test_other_exceptions_are_not_swallowed() -> None:
    @handle_errors
    def command() -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        command()
