"""The orchestrator side of the cycle without an orchestrator: which ingest failures a Prefect
flow retries (pipeline/flows/transient.py), and that the CLI and the core never import Prefect
(`stockpipe cycle` needs no extra). The flow itself is tests/integration/test_prefect_flow.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import duckdb
import pytest

from pipeline.errors import ConfigError, DataError, TrackingUnavailableError
from pipeline.flows.transient import is_transient
from pipeline.operations.lock import CycleBusyError


def caused(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


LOCKED = duckdb.IOException('IO Error: Could not set lock on file "w.duckdb": Conflicting lock')


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("connection reset by peer"),
        TimeoutError("timed out"),
        socket.gaierror(-3, "Temporary failure in name resolution"),
        TrackingUnavailableError("tracking store at http://mlflow:5000 is unreachable"),
        caused(DataError("warehouse w.duckdb is locked by another process"), LOCKED),
        caused(DataError("download failed"), ConnectionError("reset")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_failures_that_may_pass_are_retried(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        DataError("NVDA.csv: unparseable close"),  # the same file fails the same way again
        ConfigError("data.yaml: tickers must be a list"),
        caused(DataError("cannot create its folder"), PermissionError(13, "Permission denied")),
        caused(DataError("warehouse w.duckdb is corrupt"), duckdb.IOException("bad checksum")),
        CycleBusyError("another cycle of this project is running"),
        ValueError("a bug"),
        KeyboardInterrupt(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_bad_input_a_busy_lock_an_interrupt_and_bugs_are_not(error: BaseException) -> None:
    assert not is_transient(error)


def test_the_cli_and_the_core_never_import_prefect() -> None:
    code = (
        "import sys\n"
        "import pipeline.cli, pipeline.cli.cycle, pipeline.bootstrap, pipeline.operations.cycle\n"
        "import pipeline.flows, pipeline.flows.transient\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
