"""Adapters of the cycle's ports: the registry and the prediction log as its decisions read
them, and its steps as the use cases `score --start/--end`, `monitor` and `train` run them.

Heavy modules (monitoring, training) are imported by the step that needs them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from pipeline.atomic import atomic_write_text
from pipeline.data.predlog import SQLiteLog
from pipeline.data.snapshots import SnapshotStore
from pipeline.errors import DataError
from pipeline.monitoring.performance import TRACK_RECORD
from pipeline.operations.ports import Champion, Scored, Watched
from pipeline.operations.record import Retrained
from pipeline.operations.schedule import LastRetrain
from pipeline.serving.replay import replay
from pipeline.serving.score import ScorePorts
from pipeline.serving.sinks import ParquetSink
from pipeline.settings import StockpipeConfig
from pipeline.tracking.registry import MlflowRegistry
from pipeline.tracking.store import ensure_store

if TYPE_CHECKING:
    from pipeline.monitoring.monitor import MonitorPorts
    from pipeline.training.job import TrainPorts


class RegistryModels:
    """Champions, and the data each version was trained on: its lineage's snapshot ids,
    whose manifest entries carry their last date (what `train` records; a lost challenger
    is a version too, so it counts as a retrain)."""

    def __init__(
        self, uri: str, names: Mapping[int, str], alias: str, primary: int, store: SnapshotStore
    ) -> None:
        self.uri, self.names, self.alias, self.primary = uri, dict(names), alias, primary
        self.snapshots = store

    def champions(self) -> dict[int, Champion]:
        return {
            h: Champion(h, name, MlflowRegistry(self.uri, name).version_for_alias(self.alias))
            for h, name in self.names.items()
        }

    def last_retrain(self) -> LastRetrain:
        import mlflow

        ensure_store(self.uri)
        client = mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        name = self.names[self.primary]
        newest = client.search_model_versions(
            f"name='{name}'", max_results=1, order_by=["version_number DESC"]
        )
        if not newest:
            return LastRetrain(None, None, f"{name} has no version")
        version = str(newest[0].version)
        through, note = self._through(dict(newest[0].tags), f"{name} v{version}")
        return LastRetrain(version, through, note)

    def trained_through(self, champion: Champion) -> dt.date | None:
        if champion.version is None:
            return None
        tags = MlflowRegistry(self.uri, champion.name).version_tags(champion.version)
        return self._through(tags, f"{champion.name} v{champion.version}")[0]

    def _through(self, tags: Mapping[str, str], label: str) -> tuple[dt.date | None, str]:
        """The last date of the panel snapshots a version's lineage names, and a note when
        there is none to read."""
        ids = [s for s in tags.get("snapshot_ids", "").split(",") if s.strip()]
        if not ids:
            return None, f"{label} records no snapshot_ids"
        try:
            known = {s.id: s for s in self.snapshots.entries()}
        except DataError as exc:
            return None, str(exc)
        found = [known[i].last_date for i in ids if i in known]
        if len(found) < len(ids):
            return None, f"snapshot(s) of {label} are not in {self.snapshots.manifest}"
        return dt.date.fromisoformat(max(found)), ""


class LogScoredDates:
    """The newest as-of date a version has in the prediction log's track record (the sources
    `monitor` grades: an API call is no evening's prediction)."""

    def __init__(self, log: SQLiteLog) -> None:
        self.log = log

    def last_scored(self, champion: Champion) -> dt.date | None:
        rows = self.log.rows().filter(
            (pl.col("model_name") == champion.name)
            & (pl.col("model_version") == champion.version)
            & pl.col("source").is_in(TRACK_RECORD)
        )
        last = rows.get_column("as_of_date").max()
        return last if isinstance(last, dt.date) else None


class _Appending:
    """A parquet sink that keeps every frame written to it this evening (one per horizon
    replayed), so the file holds them all."""

    def __init__(self, path: Path) -> None:
        self.sink = ParquetSink(path)
        self.frames: list[pl.DataFrame] = []

    def write(self, frame: pl.DataFrame) -> Path:
        self.frames.append(frame)
        return self.sink.write(pl.concat(self.frames, how="diagonal_relaxed"))


class LiveSteps:
    """The cycle's steps on the real use cases, for one as-of date."""

    def __init__(
        self,
        cfg: StockpipeConfig,
        score: ScorePorts,
        monitor: Callable[[], MonitorPorts],
        train: Callable[[], TrainPorts],
        folder: Path,
        as_of: dt.date,
    ) -> None:
        self.cfg, self.folder, self.as_of = cfg, folder, as_of
        self.score_ports, self.monitor_ports, self.train_ports = score, monitor, train
        self.sink = _Appending(folder / f"{as_of}.predictions.parquet")

    def score(self, start: dt.date, end: dt.date, model_uri: str) -> Scored:
        done = replay(self.cfg, self.score_ports, self.sink, start, end, model_uri, "cycle")
        return Scored(rows=done.frame.height, dates=done.covered[2])

    def monitor(self) -> list[Watched]:
        from pipeline.monitoring.monitor import monitor_horizons

        out = self.cfg.resolve(self.cfg.monitoring.output_dir)
        reports = monitor_horizons(self.cfg, self.monitor_ports(), out)
        primary = self.cfg.model.target.horizon
        return [Watched(r.model.horizon or primary, r.model.version, r.status) for r in reports]

    def retrain(self) -> list[Retrained]:
        """`train` with the cycle's data; its summary beside the record (a folder the cycle
        has already written to, so writing it cannot fail after the alias has moved)."""
        from pipeline.training.train import train

        summary = train(self.cfg, self.train_ports())
        path = self.folder / f"{self.as_of}.train_summary.json"
        atomic_write_text(
            path, json.dumps(summary.model_dump(mode="json"), indent=2, allow_nan=False)
        )
        each: dict[str, Any] = summary.by_horizon or {str(summary.horizon): summary}
        return [
            Retrained(
                horizon=int(h),
                version=s.champion.version,
                promoted=s.champion.promoted,
                reason=s.champion.reason,
            )
            for h, s in each.items()
        ]
