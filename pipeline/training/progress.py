"""A rich progress display per candidate: trials done, pruned, best so far, elapsed."""

from __future__ import annotations

from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgress


class CandidateProgress:
    """Progress bars on stderr; one line per candidate."""

    def __init__(self) -> None:
        self._bars = RichProgress(
            TextColumn("[bold]{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("pruned {task.fields[pruned]:>3}"),
            TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(),
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> CandidateProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bars.stop()

    def start(self, candidate: str, budget: int) -> None:
        self._tasks[candidate] = self._bars.add_task(candidate, total=budget, pruned=0, best="-")

    def update(self, candidate: str, done: int, pruned: int, best: float | None) -> None:
        self._bars.update(
            self._tasks[candidate],
            completed=done,
            pruned=pruned,
            best="-" if best is None else f"{best:.6g}",
        )

    def finish(self, candidate: str) -> None:
        task = self._bars.tasks[self._tasks[candidate]]
        self._bars.update(self._tasks[candidate], total=task.completed)
