"""The one reference to the model the service is serving, swapped atomically.

A request reads ``holder.current`` once and keeps that ``Served`` (immutable) to the end, so a
hot reload, which is a single reference assignment, never changes the model under a request
in flight: it finishes on the model it started with, and the next request gets the new one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.domain import LoadedModel


def feature_names(model: LoadedModel) -> tuple[str, ...]:
    """The columns the model's feature step computes from raw bars (empty when it has none).

    The registered pipeline starts with the feature transformer; a model loaded through the
    registry keeps the sklearn pipeline in ``raw``, one built in memory is its own predictor.
    """
    pipe: Any = model.raw if model.raw is not None else model.predictor
    step = getattr(pipe, "named_steps", {}).get("features")
    if step is None or not hasattr(step, "get_feature_names_out"):
        return ()
    try:
        return tuple(str(name) for name in step.get_feature_names_out())
    except Exception:  # an unfitted or foreign step: describe the model without its features
        return ()


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
