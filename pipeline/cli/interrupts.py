"""Ctrl-C and SIGTERM end a command cleanly: one line on stderr and the shell's exit code.

Click's default turns Ctrl-C into "Aborted!" with exit code 1, which a script cannot tell from
a failed job. SIGTERM (``kill``, ``docker stop``, a scheduler's timeout) would otherwise end the
process without unwinding, leaving its MLflow runs RUNNING until a later ``train`` on the same
host reaps them; in a container that host never comes back. Raising it as an interrupt instead
runs the same cleanup as Ctrl-C: open runs are ended, temporary files removed.

Python swallows an exception raised inside a finaliser (``__del__``, e.g. LightGBM freeing a
booster) and prints its traceback; an interrupt landing there would be lost and the job would
run on to the end. Such an interrupt is delivered again, so it stops the job at the next step.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
import time
from types import FrameType
from typing import NoReturn

import click

SIGINT_EXIT = 128 + signal.SIGINT  # 130, what shells report for a Ctrl-C'd command
SIGTERM_EXIT = 128 + signal.SIGTERM  # 143


_previous_hook = sys.unraisablehook


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt so every path that cleans up after Ctrl-C runs."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


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


def exit_interrupted(exc: KeyboardInterrupt) -> NoReturn:
    """Say what happened in one line and exit with 130 (Ctrl-C) or 143 (SIGTERM)."""
    terminated = isinstance(exc, Terminated)
    click.echo(
        f"\n{'terminated' if terminated else 'interrupted'}: stopped before finishing; "
        "files are written whole or not at all, so re-run the same command",
        err=True,
    )
    sys.exit(SIGTERM_EXIT if terminated else SIGINT_EXIT)
