"""Bounds of the online service: body size, time, and how many predictions run at once.

The event loop only receives bytes and answers; every CPU-heavy step (JSON parsing, the
contract, the model) runs in a worker thread holding one of a fixed number of slots, so a large
or slow prediction never stalls ``GET /health`` and memory stays bounded by
``max_concurrent_predictions`` bodies of at most ``max_body_bytes``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import TypeVar

from fastapi import HTTPException, Request

T = TypeVar("T")


def _too_large(max_bytes: int) -> HTTPException:
    return HTTPException(
        413, f"request body larger than {max_bytes} bytes (serving.max_body_bytes)"
    )


async def read_body(request: Request, max_bytes: int, timeout: float) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``max_bytes``.

    A declared Content-Length is checked before reading anything; a chunked body (no length)
    is counted while it streams in, so an oversized one is never held in memory whole. A body
    that does not arrive within ``timeout`` seconds gets 408.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise HTTPException(400, f"invalid Content-Length {declared!r}")
        if int(declared) > max_bytes:
            raise _too_large(max_bytes)
    chunks: list[bytes] = []
    total = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                total += len(chunk)
                if total > max_bytes:
                    raise _too_large(max_bytes)
                chunks.append(chunk)
    except TimeoutError as exc:
        raise HTTPException(
            408, f"request body not received within {timeout:g} s (serving.request_timeout_seconds)"
        ) from exc
    return b"".join(chunks)


class PredictionSlots:
    """At most ``size`` predictions run at once, each in its own daemon thread.

    A slot is taken without waiting (503 when none is free) and given back when the work
    really ends, not when the caller stops waiting: a prediction that timed out (504) still
    occupies its slot until it finishes, so stuck models cannot pile up threads or memory.
    Daemon threads (not an executor) so that a stuck model never blocks the process's exit.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = threading.BoundedSemaphore(size)

    async def run(self, work: Callable[[], T], timeout: float) -> T:
        """Run ``work`` off the event loop; 503 if saturated, 504 after ``timeout`` seconds."""
        if not self._free.acquire(blocking=False):
            raise HTTPException(
                503,
                f"busy: {self.size} prediction(s) already running "
                "(serving.max_concurrent_predictions); retry shortly",
                headers={"Retry-After": "1"},
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        # Retrieve a late outcome nobody awaits any more (after a 504), so it is not logged.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        thread = threading.Thread(
            target=self._work, args=(work, loop, future), name="stockpipe-predict", daemon=True
        )
        thread.start()
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError as exc:
            raise HTTPException(
                504,
                f"prediction did not finish within {timeout:g} s (serving.request_timeout_seconds)",
            ) from exc

    def _work(
        self, work: Callable[[], T], loop: asyncio.AbstractEventLoop, future: asyncio.Future[T]
    ) -> None:
        outcome: Callable[[], None]
        try:
            outcome = partial(future.set_result, work())
        except BaseException as exc:  # handed to the awaiting request, which renders it
            outcome = partial(future.set_exception, exc)
        finally:
            # Freed before the answer is handed over: a client sending its next request as
            # soon as it has the answer must find the slot free, not get a spurious 503.
            self._free.release()
        _settle(loop, future, outcome)


def _settle(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[T], action: Callable[[], None]
) -> None:
    def apply() -> None:
        if not future.done():
            action()

    with suppress(RuntimeError):  # the loop is gone (server shut down): nobody is waiting
        loop.call_soon_threadsafe(apply)
