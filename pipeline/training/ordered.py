"""Map a function over items in threads, yielding results in order (fold-parallel fits)."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_order(fn: Callable[[T], R], items: Sequence[T], jobs: int) -> Generator[R, None, None]:
    """``fn`` of each item, yielded in order, with up to ``jobs`` calls running at once.

    When the consumer stops early (a pruned trial raises), calls not yet started are
    cancelled and running ones are waited for, so no fit outlives its trial.
    """
    if jobs <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="fold") as pool:
        pending: deque[Future[R]] = deque()
        ahead = iter(items)
        try:
            for item in itertools.islice(ahead, jobs):
                pending.append(pool.submit(fn, item))
            while pending:
                done = pending.popleft().result()
                for item in itertools.islice(ahead, 1):
                    pending.append(pool.submit(fn, item))
                yield done
        finally:
            for future in pending:
                future.cancel()
