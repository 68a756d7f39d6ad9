"""The references to the models the service is serving, each swapped atomically.

A request reads ``holder.current`` once and keeps that ``Served`` (immutable) to the end, so a
hot reload, which is a single reference assignment, never changes the model under a request
in flight: it finishes on the model it started with, and the next request gets the new one.

The service serves one model per configured horizon, each in its own ``Slot`` (a holder and the
horizon it was configured for, reloaded independently); ``Slots`` captures them all at once
for a request. A single model (``--model-uri``, or one horizon) is one slot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from pipeline.domain import LoadedModel


def feature_names(model: LoadedModel) -> tuple[str, ...]:
    """The columns the model's feature step computes from raw bars (empty when it has none)."""
    return model.feature_names


@dataclass(frozen=True)
class Served:
    """A loaded model and how it came to be served; never mutated, only replaced."""

    model: LoadedModel
    alias: str | None = None  # what the URI follows (alias, stage's alias, Latest); None: fixed
    uri: str | None = None  # the URI the service was started with
    loaded_at: float = field(default_factory=time.time)  # unix seconds
    features: tuple[str, ...] = ()

    @classmethod
    def of(cls, model: LoadedModel, alias: str | None = None, uri: str | None = None) -> Served:
        """``model`` ready to serve, its feature names read once (not per request)."""
        return cls(model, alias, uri, time.time(), feature_names(model))


class ModelHolder:
    """Holds the ``Served`` model (None until the first load) and the reload counters."""

    def __init__(self, served: Served | None = None) -> None:
        self._served = served
        self._lock = threading.Lock()  # guards the counters only; reads of _served need none
        self.reloads = 0 if served is None else 1  # models swapped in, the first one included
        self.failures = 0  # polls or loads that failed (the old model kept serving)
        self.last_error: str | None = None

    @property
    def current(self) -> Served | None:
        """What a request must capture once and use to the end."""
        return self._served

    def swap(self, served: Served) -> None:
        """Serve ``served`` from the next request on (one reference assignment: atomic)."""
        self._served = served
        with self._lock:
            self.reloads += 1
            self.last_error = None

    def failed(self, error: str) -> None:
        """Count a failed poll or load; whatever was served keeps serving."""
        with self._lock:
            self.failures += 1
            self.last_error = error


@dataclass(frozen=True)
class Slot:
    """One model the service serves (one per horizon): where it is held and what it is for."""

    horizon: int  # the horizon it was configured for: its own when the version has no tag
    holder: ModelHolder
    name: str = ""  # the registered model it follows: its metrics label, known before it loads

    def horizon_of(self, served: Served) -> int:
        """The horizon ``served`` predicts: its version's tag, else the configured one."""
        return served.model.horizon or self.horizon


def _nothing() -> None:
    """Start nothing: the models are loaded already."""


class Slots:
    """Every model served, primary horizon first, and how to start loading them.

    With one slot everything (responses, metrics, logs) is as it was before several horizons
    were served; ``several`` is what switches to the per-horizon forms.
    """

    def __init__(self, slots: Sequence[Slot], start: Callable[[], None] = _nothing) -> None:
        if not slots:
            raise ValueError("the service needs at least one model")
        horizons = [slot.horizon for slot in slots]
        if len(set(horizons)) != len(horizons):
            raise ValueError(f"one model per horizon, got horizons {horizons}")
        self.slots = tuple(slots)
        self.start = start  # idempotent: called by whatever finds a model still loading

    def __iter__(self) -> Iterator[Slot]:
        return iter(self.slots)

    @property
    def several(self) -> bool:
        return len(self.slots) > 1

    def peek(self) -> list[Served | None]:
        """Each slot's model, read once (None while it loads)."""
        return [slot.holder.current for slot in self.slots]

    def capture(self) -> list[Served] | None:
        """What one request uses to the end: every slot's model, each read exactly once (a
        swap later never reaches it); None while any of them is still loading."""
        served = self.peek()
        return None if any(s is None for s in served) else [s for s in served if s is not None]

    def loading(self) -> list[Slot]:
        """The slots without a model yet."""
        return [slot for slot in self.slots if slot.holder.current is None]

    def versions(self, served: Sequence[Served | None]) -> str | None:
        """The versions serving, for logs and probes: ``"3"`` for one model, else
        ``"h1=3,h5=2"`` over the loaded ones; None when none is."""
        if not self.several:
            return served[0].model.version if served[0] is not None else None
        pairs = [f"h{slot.horizon_of(s)}={s.model.version}" for slot, s in self._loaded(served)]
        return ",".join(pairs) or None

    def _loaded(self, served: Sequence[Served | None]) -> list[tuple[Slot, Served]]:
        return [(slot, s) for slot, s in zip(self.slots, served, strict=True) if s is not None]
