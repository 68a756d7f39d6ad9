"""Hand-written fakes for the tracking and registry ports (no MLflow involved), and the
ports ``train()`` runs on in tests: sample files, an in-memory warehouse and these fakes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import SAMPLE

from pipeline.bootstrap import scratch_warehouse
from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore
from pipeline.errors import TrackingError
from pipeline.training.train import TrainPorts

_ids = itertools.count()


@dataclass
class FakeRun:
    name: str
    parent: FakeRun | None
    run_id: str = field(default_factory=lambda: f"run-{next(_ids)}")
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int | None, float]]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    models: list[Any] = field(default_factory=list)
    status: str = "RUNNING"

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.params.update(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        for k, v in metrics.items():
            self.metrics.setdefault(k, []).append((step, float(v)))

    def log_text(self, text: str, artifact_file: str) -> None:
        self.texts[artifact_file] = text

    def log_artifact(self, local_path: Any, artifact_dir: str | None = None) -> None:
        path = f"{artifact_dir}/{local_path.name}" if artifact_dir else local_path.name
        self.artifacts[path] = local_path.read_bytes()

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tags.update(tags)

    def log_model(self, model: Any, input_example: Any, tags: Mapping[str, str]) -> str:
        self.models.append((model, input_example, dict(tags)))
        return f"models:/m-{self.run_id}-{len(self.models)}"


@dataclass
class FakeTracker:
    uri: str = "fake://"
    reachable: bool = True
    runs: list[FakeRun] = field(default_factory=list)
    trials: list[FakeRun] = field(default_factory=list)

    def check(self) -> None:
        if not self.reachable:
            raise TrackingError(f"tracking server {self.uri} is unreachable")

    def log_trial(
        self,
        parent: Any,
        name: str,
        params: Mapping[str, Any],
        per_fold: list[dict[str, float]],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        state: str,
        artifact: Path | None = None,
    ) -> None:
        run = FakeRun(name, parent, params=dict(params), tags={**tags, "state": state})
        for step, fold in enumerate(per_fold):
            run.log_metrics({f"fold_{k}": v for k, v in fold.items()}, step=step)
        run.log_metrics(metrics)
        if artifact is not None:  # read now: the caller deletes its temporary file
            run.log_artifact(artifact, "trial")
        run.status = "FINISHED"
        self.trials.append(run)

    @contextmanager
    def start_run(self, name: str, parent: Any = None) -> Iterator[FakeRun]:
        run = FakeRun(name, parent)
        self.runs.append(run)
        try:
            yield run
        except BaseException:
            run.status = "FAILED"
            raise
        run.status = "FINISHED"


@dataclass
class FakeRegistry:
    registered: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[str]] = field(default_factory=dict)

    def register(
        self, model_uri: str, run_id: str, tags: Mapping[str, str], description: str = ""
    ) -> str:
        version = str(len(self.registered) + 1)
        self.registered[version] = {
            "uri": model_uri,
            "run_id": run_id,
            "tags": dict(tags),
            "description": description,
        }
        return version

    def set_alias(self, alias: str, version: str, record: bool = False) -> None:
        if version not in self.registered:
            raise TrackingError(f"no version {version}")
        self.aliases[alias] = version
        if record:  # like MlflowRegistry: the tag follows the alias
            self.registered[version]["tags"]["promoted"] = "true"
            self.history.setdefault(alias, []).append(version)

    def alias_history(self, alias: str) -> list[str]:
        return list(self.history.get(alias, []))

    def rollback(self, alias: str) -> str:
        hist = self.history.get(alias, [])
        if len(hist) < 2:
            raise TrackingError("nothing to roll back to")
        hist.pop()
        self.aliases[alias] = hist[-1]
        self.registered[hist[-1]]["tags"]["promoted"] = "true"
        return hist[-1]

    def reconcile(self, alias: str) -> str | None:
        version = self.aliases.get(alias)
        if version is None or self.registered[version]["tags"].get("promoted") == "true":
            return None
        self.registered[version]["tags"]["promoted"] = "true"
        return version

    def version_for_alias(self, alias: str) -> str | None:
        return self.aliases.get(alias)

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.registered[version]["tags"])

    def versions(self) -> list[dict[str, Any]]:
        return [
            {"version": v, "aliases": [a for a, x in self.aliases.items() if x == v], **doc}
            for v, doc in sorted(self.registered.items(), key=lambda kv: -int(kv[0]))
        ]


def train_ports(
    data: Path = SAMPLE / "NVDA.csv", benchmark: Path | None = SAMPLE / "SPY.csv", **ports: Any
) -> TrainPorts:
    """``train()``'s ports: prices from ``data``, an in-memory warehouse, the benchmark file,
    and a fresh FakeTracker and FakeRegistry unless ``ports`` passes them (or other ports)."""
    ports.setdefault("tracker", FakeTracker())
    ports.setdefault("registry", FakeRegistry())
    ports.setdefault("workspace", scratch_warehouse)
    return TrainPorts(
        source=FileSource(data),
        store=DuckDBStore(":memory:"),
        benchmark=FileSource(benchmark) if benchmark else None,
        **ports,
    )
