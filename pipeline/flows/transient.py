"""Which failures of the cycle's ingest are worth another try, for an orchestrator's retries.

Trying again helps only when something outside the project failed for a moment: the network,
the tracking store, or another process holding the warehouse. Bad input or configuration
(our errors with exit code 2: a file the contract refuses, a missing setting) fails the same
way every time, so retrying it only delays the message; an interrupt, a busy cycle lock and a
bug are not retried either. Plain Python, no orchestrator imported: the policy is tested
without one.

Yahoo being unreachable is a DataError raised after the yfinance source's own retries
(``data.yaml``: ``yahoo``'s retries and backoff, pipeline/data/yahoo.py), so it is not
retried again here: that source already decided the download failed.
"""

from __future__ import annotations

import socket

import duckdb

from pipeline.data.warehouse_errors import is_locked
from pipeline.errors import EXIT_TRACKING, StockpipeError, exit_code_of

# The network failing under a download or a call to the tracking server (DNS included:
# socket.gaierror is an OSError but not a ConnectionError).
_NETWORK = (ConnectionError, TimeoutError, socket.gaierror)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc``, raised by the ingest, may not happen on another try (module doc)."""
    if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: stop now
        return False
    if isinstance(exc, StockpipeError):
        # The tracking store unreachable (exit 4), or an error of ours caused by a transient
        # failure: the warehouse still locked by another process after its wait, say.
        cause = exc.__cause__
        return exc.exit_code == EXIT_TRACKING or (cause is not None and _passing(cause))
    return _passing(exc)


def _passing(exc: BaseException) -> bool:
    """A failure of something outside the project that may pass."""
    if isinstance(exc, duckdb.Error):
        return is_locked(exc)
    if isinstance(exc, _NETWORK):
        return True
    # MLflow's and its HTTP stack's own errors: the tracking store failed under us.
    return exit_code_of(exc) == EXIT_TRACKING
