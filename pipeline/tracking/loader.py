"""Loading a model by URI: any form ``pipeline.tracking.uris`` resolves, or ``models:/m-...``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

from pipeline.domain import LoadedModel
from pipeline.errors import TrackingError
from pipeline.evaluation.intervals import TAG, IntervalCalibration
from pipeline.tracking.store import ensure_store
from pipeline.tracking.uris import parse_model_uri, resolve_version

# MLflow 3 has no stages: the stage names of a model URI map to these aliases by default.
STAGE_ALIASES = {"Production": "champion", "Staging": "challenger"}


class MlflowModelLoader:
    """Loads a model by URI through pyfunc (schema-enforced) and reads its registry tags."""

    def __init__(self, uri: str, stage_aliases: Mapping[str, str] | None = None) -> None:
        self.uri = uri
        self.stage_aliases = dict(stage_aliases or STAGE_ALIASES)

    def load(self, model_uri: str) -> Any:
        """The model behind ``model_uri`` as a LoadedModel; TrackingError if it cannot be."""
        import mlflow.pyfunc
        from mlflow.exceptions import MlflowException

        name, version, tags, run_id, target = self._find(model_uri)
        try:
            # pyfunc keeps MLflow's signature enforcement on every predict. Its warnings are
            # not worth their price here: checking the model's pip requirements against the
            # installed packages scans every distribution's file list (about a second, more
            # than the model itself takes to load).
            pyfunc_model = mlflow.pyfunc.load_model(target, suppress_warnings=True)
        except MlflowException as exc:
            raise TrackingError(f"cannot load model {model_uri} from {self.uri}: {exc}") from exc
        raw = pyfunc_model.get_raw_model()
        features = getattr(raw, "named_steps", {}).get("features")
        warmup = int(tags.get("warmup_rows", getattr(features, "warmup_", 0)))
        horizon = int(tags["horizon"]) if "horizon" in tags else None
        loaded = LoadedModel(
            predictor=pyfunc_model,
            name=name,
            version=version,
            warmup=warmup,
            horizon=horizon,
            benchmark=tags.get("benchmark") or None,
            raw=raw,
            tags=tags,
            run_id=run_id,
        )
        return dataclasses.replace(loaded, intervals=_intervals(loaded, model_uri))

    def trained_on(self, model_uri: str) -> TrainedOn:
        """The data the model behind ``model_uri`` was trained on, from its lineage tags:
        registry lookups only, no model loaded (commands choose their data before loading)."""
        found = self._find(model_uri)
        label = f"{found.name} v{found.version}" if found.name else model_uri
        return TrainedOn.from_tags(found.tags, label)

    def _find(self, model_uri: str) -> _Found:
        """What ``model_uri`` names: a registered version, a logged model or any other URI."""
        import mlflow

        ensure_store(self.uri)
        mlflow.set_tracking_uri(self.uri)
        client = mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        ref = parse_model_uri(model_uri, self.stage_aliases)
        if ref is not None:
            mv = resolve_version(client, ref)
            # A concrete version: what was resolved is what loads, even if the alias moves.
            target = f"models:/{ref.name}/{mv.version}"
            return _Found(ref.name, str(mv.version), dict(mv.tags), mv.run_id, target)
        if model_uri.startswith(LOGGED_PREFIX):  # a logged model (`tune`): its own tags
            name, tags, run_id = _logged_model(client, model_uri)
            # outputs and the prediction log still name the model
            return _Found(name, UNREGISTERED, tags, run_id, model_uri)
        return _Found(None, None, {}, None, model_uri)


class _Found(NamedTuple):
    name: str | None
    version: str | None
    tags: dict[str, str]
    run_id: str | None
    target: str  # the URI pyfunc loads


def _ids(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


@dataclasses.dataclass(frozen=True)
class TrainedOn:
    """The data a model was trained on, as `train` recorded it in the lineage tags
    (``pipeline.training.lineage.lineage_tags``).

    ``source`` is the file (or ``{ticker}`` pattern) training read; None when the panel came
    from raw snapshots, or when the model predates the ``data_source`` tag (the snapshot
    manifest may still say which file the snapshots were imported from).
    """

    model: str  # "Name vN", for messages
    tickers: tuple[str, ...]
    snapshot_ids: tuple[str, ...]
    benchmark_snapshot_ids: tuple[str, ...]
    source: str | None

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], model: str) -> TrainedOn:
        return cls(
            model=model,
            tickers=_ids(tags.get("tickers")),
            snapshot_ids=_ids(tags.get("snapshot_ids")),
            benchmark_snapshot_ids=_ids(tags.get("benchmark_snapshot_ids")),
            source=tags.get("data_source") or None,
        )

    @property
    def recorded(self) -> bool:
        """Whether the lineage names any training data (older models carry none)."""
        return bool(self.tickers and self.snapshot_ids)


LOGGED_PREFIX = "models:/m-"
UNREGISTERED = "unregistered"  # the version of a logged model that no registry version names


def _logged_model(client: Any, model_uri: str) -> tuple[str, dict[str, str], str | None]:
    """A logged model's id, the lineage tags it was logged with (horizon, benchmark, ...: what
    a registered version copies, so an unregistered winner loads with the same facts) and
    the run that logged it."""
    from mlflow.exceptions import MlflowException

    model_id = model_uri.removeprefix("models:/").split("/")[0]
    try:
        logged = client.get_logged_model(model_id)
    except MlflowException as exc:
        raise TrackingError(f"cannot find logged model {model_uri}: {exc}") from exc
    return model_id, dict(logged.tags), logged.source_run_id


def _intervals(model: LoadedModel, model_uri: str) -> IntervalCalibration | None:
    """The version's interval calibration, parsed once here (None: registered without one).

    A tag that is not a valid calibration for this model is an error, not a model silently
    served without its intervals."""
    try:
        return IntervalCalibration.from_tags(model.tags, model.feature_names)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise TrackingError(f"model {model_uri}: tag {TAG!r} is not usable: {exc}") from exc


class MlflowVersionResolver:
    """Which version a model URI names now, through the one resolver (``resolve_version``):
    two registry lookups, no model loaded, so `serve` can poll it every few seconds."""

    def __init__(self, uri: str, stage_aliases: Mapping[str, str] | None = None) -> None:
        self.uri = uri
        self.stage_aliases = dict(stage_aliases or STAGE_ALIASES)
        self._client: Any = None  # built on first use: polling reuses one client

    def follows(self, model_uri: str) -> str | None:
        """The alias (or ``Latest``) ``model_uri`` follows; None for a fixed version."""
        ref = parse_model_uri(model_uri, self.stage_aliases)
        if ref is None or ref.version is not None:
            return None
        return "Latest" if ref.latest else ref.alias

    def resolve(self, model_uri: str) -> str:
        """The version ``model_uri`` names now; TrackingError naming what does not exist."""
        ref = parse_model_uri(model_uri, self.stage_aliases)
        if ref is None:
            raise TrackingError(f"model URI {model_uri!r} names no registered version")
        if self._client is None:
            import mlflow

            ensure_store(self.uri)
            self._client = mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return str(resolve_version(self._client, ref).version)
