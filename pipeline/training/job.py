"""What a training job is given: the ports it talks to and the options of one run.

Kept apart from ``train.py`` so that the steps of the job (registration, reporting) can take
the ports without importing the use case that calls them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.data.snapshots import SnapshotStore
from pipeline.domain import DataPorts, ModelLoader, Registry, Tracker
from pipeline.errors import StockpipeError
from pipeline.training.callbacks import NoProgress, Progress


@dataclass(frozen=True, kw_only=True)
class TrainPorts(DataPorts):
    """Everything the use case talks to, injected by the composition root or by tests.

    The data ports (``DataPorts``) plus the tracking store, the registry and, optionally, the
    incumbent's loader and the raw snapshot store. The job is planned in ``workspace`` before
    the warehouse, the snapshots or the registry are written.
    """

    tracker: Tracker
    registry: Registry
    loader: ModelLoader | None = None  # loads the incumbent for the promotion gate
    progress: Progress = field(default_factory=NoProgress)
    snapshots: SnapshotStore | None = None  # keeps an immutable copy of what was trained on
    # With several horizons: each horizon's registered model (``registry`` is the primary's).
    registries: Mapping[int, Registry] = field(default_factory=dict)

    def for_horizon(self, horizon: int) -> TrainPorts:
        """The ports of one horizon's job: the registry of that horizon's registered model."""
        if horizon not in self.registries:
            raise StockpipeError(f"no registry for horizon {horizon} (TrainPorts.registries)")
        return dataclasses.replace(self, registry=self.registries[horizon])


@dataclass(frozen=True)
class TrainOptions:
    """Choices of one run that are not configuration."""

    force_promote: bool = False  # register as champion even if the gate says no
    study_name: str | None = None  # join or resume this study instead of the default one
    register: bool = True  # False: compete and track everything, register nothing (`tune`)
