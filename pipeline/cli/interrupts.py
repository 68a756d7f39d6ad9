"""Ctrl-C and SIGTERM end a command cleanly: one line on stderr and the shell's exit code.

Click's default turns Ctrl-C into "Aborted!" with exit code 1, which a script cannot tell from
a failed job. SIGTERM (``kill``, ``docker stop``, a scheduler's timeout) would otherwise end the
process without unwinding, leaving its MLflow runs RUNNING until a later ``train`` on the same
host reaps them; in a container that host never comes back.

Two modes. Outside training, SIGTERM is raised as ``Terminated`` (an interrupt) at once, so
the same cleanup as Ctrl-C runs. During ``train`` and ``tune`` (:func:`stop_at_safe_points`)
the handlers raise nothing: an exception raised at an arbitrary bytecode while fold threads
run LightGBM or XGBoost native code, or between a library freeing a handle and forgetting it,
once ended in ``double free or corruption`` (exit 134) instead of 143. There the first signal
only records a stop request (``pipeline.training.stopping``) and the job raises it at its next
safe point, with every worker thread joined; a second signal exits at once (``os._exit``: the
job's runs are then left to the orphan reaper).

Python swallows an exception raised inside a finaliser (``__del__``, e.g. LightGBM freeing a
booster) and prints its traceback; an interrupt landing there would be lost and the job would
run on to the end. Such an interrupt is delivered again, so it stops the job at the next step.
"""

from __future__ import annotations

import _thread
import atexit
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

import click

from pipeline.training.stopping import STOP

SIGINT_EXIT = 128 + signal.SIGINT  # 130, what shells report for a Ctrl-C'd command
SIGTERM_EXIT = 128 + signal.SIGTERM  # 143
# How long a stopped job waits for leftover worker threads before exiting without
# interpreter finalisation (see exit_interrupted).
THREAD_GRACE_SECONDS = 10.0


_previous_hook = sys.unraisablehook
_exit_guarded = False  # _ignore_signals_at_exit is registered (once per process)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt so every path that cleans up after Ctrl-C runs."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _request_stop(signum: int, frame: FrameType | None) -> None:
    """Record a stop for the job's next safe point; on a repeated signal, exit now.

    Runs in the main thread between bytecodes: it raises nothing and touches no Python
    stream (a signal landing inside ``print`` would make a buffered write re-entrant).
    """
    error = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    if STOP.request(error):
        return
    # Asked twice: the user (or docker, before its SIGKILL) wants out now. Finalisation
    # could free memory under native threads, so skip it; runs left RUNNING are reaped by
    # the next train on this host.
    os.write(2, b"\nstopped again: exiting at once; the next train cleans up after this one\n")
    os._exit(128 + signum)


def _redeliver_swallowed_interrupt(unraisable: sys.UnraisableHookArgs) -> None:
    """Send an interrupt that a finaliser swallowed again; report anything else as usual."""
    exc = unraisable.exc_value
    if not isinstance(exc, KeyboardInterrupt):
        _previous_hook(unraisable)
        return
    signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
    # Not from here: a signal handled while this hook (Python code) runs would be swallowed
    # again. A bare thread (``threading.Thread.start`` would wait in Python code) simulates
    # the signal a moment later, once the finaliser has returned.
    _thread.start_new_thread(_interrupt_main_soon, (signum,))


def _interrupt_main_soon(signum: signal.Signals) -> None:
    """Deliver ``signum`` to the main thread's handler after a moment."""
    time.sleep(0.05)
    _thread.interrupt_main(signum)


def install_handlers() -> None:
    """Turn SIGTERM into ``Terminated`` and keep interrupts from being lost in finalisers
    (signal handlers can only be set from the main thread)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
        if sys.unraisablehook is not _redeliver_swallowed_interrupt:
            global _previous_hook  # other unraisable errors go where they went before
            _previous_hook = sys.unraisablehook
            sys.unraisablehook = _redeliver_swallowed_interrupt


@contextmanager
def stop_at_safe_points() -> Iterator[None]:
    """Within the block, Ctrl-C and SIGTERM stop the job at its next safe point
    (``pipeline.training.stopping.checkpoint``) instead of wherever the signal lands.

    A signal that arrives after the job's last safe point (registration has begun) lets it
    finish: it exits 0 with a note, since everything it was asked to do is done. Once a stop
    was requested the handlers stay in place, so a second signal still exits at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    STOP.clear()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, _request_stop)
    try:
        yield
    finally:
        if not STOP.requested:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    # Reached only when the block finished normally: the job is done.
    global _exit_guarded
    if not _exit_guarded:
        _exit_guarded = True
        atexit.register(_ignore_signals_at_exit)  # the last registered runs first
    if STOP.requested:
        click.echo("stop requested after the job's last step: it finished", err=True)


def _ignore_signals_at_exit() -> None:
    """At interpreter exit after a finished job, ignore Ctrl-C and SIGTERM.

    Finalisation resets every handler Python set to the default action (a SIGTERM landing
    then kills the process: -15, not 0 or 143) but leaves an ignored signal ignored. In a
    test process this runs only when the test run itself exits.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def exit_interrupted(exc: KeyboardInterrupt) -> NoReturn:
    """Say what happened in one line and exit with 130 (Ctrl-C) or 143 (SIGTERM)."""
    terminated = isinstance(exc, Terminated)
    click.echo(
        f"\n{'terminated' if terminated else 'interrupted'}: stopped before finishing; "
        "files are written whole or not at all, so re-run the same command",
        err=True,
    )
    code = SIGTERM_EXIT if terminated else SIGINT_EXIT
    if not _join_workers(THREAD_GRACE_SECONDS):
        # A fold thread is still inside native code: interpreter finalisation would free
        # objects under it (the double free of issue 21). The job's runs are already ended
        # and its files written whole or not at all, so skipping finalisation loses nothing.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _join_workers(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the fold threads (``training.ordered``, named
    ``fold_N``), which run native fits, to end; return whether they all did.

    Only those: idle pool threads of libraries (non-daemon, ended by an atexit hook) would
    never end here. Optuna's trial threads are joined by its own pool before a stop reaches
    this far.
    """
    deadline = time.monotonic() + timeout
    for thread in _fold_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    return not _fold_threads()


def _fold_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fold_") and t.is_alive()]
