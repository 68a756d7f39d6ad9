"""A request to stop the training job at its next safe point, set by a signal handler.

Raising an exception straight from a signal handler lands it at an arbitrary bytecode of the
main thread: between a native library freeing a handle and Python forgetting it, or while
fold threads still run LightGBM or XGBoost code. One SIGTERM in nine ended in ``double free or
corruption`` that way (issue 21). So during training the handler only records the request
(``pipeline.cli.interrupts``) and the job raises it itself, with :func:`checkpoint`, at points
where no fit is running: between folds (the fold threads are joined first), between trials,
between candidates and before the gate and the registration. Everything above unwinds as for
any exception: MLflow runs are ended, temporary files removed.

The request is process-wide because signals are. This module imports nothing heavy, so the
CLI can use it without loading the training stack.
"""

from __future__ import annotations

import threading


class StopRequest:
    """Whether a stop was asked for, and the exception that carries it out."""

    def __init__(self) -> None:
        self._error: type[BaseException] | None = None
        self._lock = threading.Lock()

    @property
    def requested(self) -> bool:
        """True once a stop was asked for (until :meth:`clear`)."""
        return self._error is not None

    def request(self, error: type[BaseException]) -> bool:
        """Ask for a stop raised as ``error``; return False if one was already asked for.

        Called from a signal handler (main thread), so it never blocks: a second request
        while the first is being recorded counts as a repeat.
        """
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._error is not None:
                return False
            self._error = error
            return True
        finally:
            self._lock.release()

    def clear(self) -> None:
        """Forget a request (a new job in the same process, or a test)."""
        self._error = None

    def check(self) -> None:
        """Raise the requested stop, if any: call only where stopping leaves nothing torn."""
        error = self._error
        if error is not None:
            raise error()


STOP = StopRequest()


def checkpoint() -> None:
    """A safe point of the training job: stop here if a stop was asked for."""
    STOP.check()


def stop_requested() -> bool:
    """Whether a stop was asked for (for loops that wind down instead of raising)."""
    return STOP.requested
