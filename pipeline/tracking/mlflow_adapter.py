"""MLflow adapters for the Tracker, Run and Registry ports.

The embedded default is a sqlite store plus a local artifact folder, both created on first
use. A server URI (http://...) is checked before any computation so that a long competition
never dies at the end because the server was down at the start.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from pipeline.errors import TrackingError

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow's defaults (7 retries with exponential backoff, 120 s timeouts) make a dead server
# look like a hang; fail within about a minute instead. Users can still override both.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

# skops refuses to load types it does not know; these are ours plus the estimators' internals.
SKOPS_TRUSTED_TYPES = [
    "pipeline.model.transformer.PolarsFeatures",
    "lightgbm.sklearn.LGBMRegressor",
    "lightgbm.basic.Booster",
    "xgboost.sklearn.XGBRegressor",
    "xgboost.core.Booster",
    "collections.OrderedDict",
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.model_selection._split.TimeSeriesSplit",
    "sklearn.feature_selection._univariate_selection.f_regression",
    "sklearn.feature_selection._mutual_info.mutual_info_regression",
]

_REQUIREMENT_PACKAGES = (
    "polars",
    "scikit-learn",
    "lightgbm",
    "pandas",
    "numpy",
    "skops",
    "pyarrow",
    "pydantic",
)


def pip_requirements() -> list[str]:
    """Pinned requirements of the serialised model; avoids MLflow's slow inference."""
    reqs = [f"{p}=={metadata.version(p)}" for p in _REQUIREMENT_PACKAGES]
    xgb = next((d for d in ("xgboost-cpu", "xgboost") if _installed(d)), None)
    if xgb:
        reqs.append(f"{xgb}=={metadata.version(xgb)}")
    reqs.append(
        f"stockpipe=={metadata.version('stockpipe')}" if _installed("stockpipe") else "stockpipe"
    )
    return reqs


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


class MlflowRun:
    """An open MLflow run (the Run port)."""

    def __init__(self, run_id: str) -> None:
        import mlflow

        self.run_id = run_id
        self._client = mlflow.MlflowClient()

    def log_params(self, params: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._client.log_text(self.run_id, text, artifact_file)

    def log_artifact(self, local_path: Path, artifact_dir: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(local_path), artifact_dir)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        import mlflow

        mlflow.set_tags(dict(tags))

    def log_model(self, model: Any, input_example: Any, tags: Mapping[str, str]) -> str:
        import mlflow.sklearn
        from mlflow.models import infer_signature

        signature = infer_signature(input_example, model.predict(input_example))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=input_example,
            pip_requirements=pip_requirements(),
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            tags=dict(tags),
        )
        return str(info.model_uri)


class MlflowTracker:
    """The Tracker port on MLflow: sqlite file by default, or a tracking server."""

    def __init__(self, uri: str, experiment: str, artifact_location: Path) -> None:
        self.uri = uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        self._exp_id: str | None = None

    def check(self) -> None:
        if self.uri.startswith("sqlite:///"):
            Path(self.uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
            return
        if self.uri.startswith(("http://", "https://")):
            try:
                with urllib.request.urlopen(f"{self.uri.rstrip('/')}/health", timeout=5) as r:
                    if r.status != 200:
                        raise TrackingError(f"tracking server {self.uri} answered {r.status}")
            except (urllib.error.URLError, OSError) as exc:
                raise TrackingError(
                    f"tracking server {self.uri} is unreachable ({exc}); start it or pass "
                    "--tracking-uri sqlite:///mlruns/mlflow.db for the embedded store"
                ) from exc

    def _experiment_id(self) -> str:
        import mlflow

        if self._exp_id is not None:
            return self._exp_id
        mlflow.set_tracking_uri(self.uri)
        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            self._exp_id = str(exp.experiment_id)
            return self._exp_id
        location = None
        if self.uri.startswith("sqlite:///"):
            self.artifact_location.mkdir(parents=True, exist_ok=True)
            location = self.artifact_location.resolve().as_uri()
        self._exp_id = str(client.create_experiment(self.experiment, artifact_location=location))
        return self._exp_id

    def log_trial(
        self,
        parent: Any,
        name: str,
        params: Mapping[str, Any],
        per_fold: list[dict[str, float]],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        state: str,
    ) -> None:
        import mlflow
        from mlflow.entities import Metric, Param

        client = mlflow.MlflowClient(tracking_uri=self.uri)
        run = client.create_run(
            self._experiment_id(),
            run_name=name,
            tags={"mlflow.parentRunId": parent.run_id, **tags},
        )
        ts = int(time.time() * 1000)
        batch = [
            Metric(f"fold_{k}", v, ts, step)
            for step, fold in enumerate(per_fold)
            for k, v in fold.items()
        ]
        batch += [Metric(k, float(v), ts, 0) for k, v in metrics.items()]
        client.log_batch(
            run.info.run_id, metrics=batch, params=[Param(k, str(v)) for k, v in params.items()]
        )
        status = {"complete": "FINISHED", "pruned": "KILLED"}.get(state, "FAILED")
        client.set_terminated(run.info.run_id, status=status)

    @contextmanager
    def start_run(self, name: str, parent: Any = None) -> Iterator[MlflowRun]:
        import mlflow

        experiment_id = self._experiment_id()
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=name, nested=parent is not None
        ) as run:
            yield MlflowRun(run.info.run_id)


class MlflowRegistry:
    """The Registry port on the MLflow Model Registry (aliases, not deprecated stages)."""

    def __init__(self, uri: str, name: str) -> None:
        self.uri = uri
        self.name = name

    def _client(self) -> Any:
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def register(
        self, model_uri: str, run_id: str, tags: Mapping[str, str], description: str = ""
    ) -> str:
        from mlflow.exceptions import MlflowException

        client = self._client()
        try:
            client.get_registered_model(self.name)
        except MlflowException:
            client.create_registered_model(
                self.name, description="stockpipe forecast of forward log returns"
            )
        mv = client.create_model_version(
            self.name,
            source=model_uri,
            run_id=run_id,
            tags=dict(tags),
            description=description or None,
            model_id=model_uri.removeprefix("models:/")
            if model_uri.startswith("models:/m-")
            else None,
        )
        return str(mv.version)

    def set_alias(self, alias: str, version: str, record: bool = False) -> None:
        from mlflow.exceptions import MlflowException

        client = self._client()
        try:
            client.get_model_version(self.name, version)
        except MlflowException as exc:
            raise TrackingError(f"{self.name} has no version {version}: {exc.message}") from exc
        client.set_registered_model_alias(self.name, alias, version)
        if record:
            history = [*self.alias_history(alias), version]
            client.set_registered_model_tag(self.name, _history_tag(alias), ",".join(history))

    def alias_history(self, alias: str) -> list[str]:
        from mlflow.exceptions import MlflowException

        try:
            tags = self._client().get_registered_model(self.name).tags
        except MlflowException:
            return []
        raw = tags.get(_history_tag(alias), "")
        return [v for v in raw.split(",") if v]

    def rollback(self, alias: str) -> str:
        history = self.alias_history(alias)
        if len(history) < 2:
            raise TrackingError(
                f"{self.name}@{alias} has no previous version to roll back to "
                f"(history: {history or 'empty'})"
            )
        previous = history[-2]
        client = self._client()
        client.set_registered_model_alias(self.name, alias, previous)
        client.set_registered_model_tag(self.name, _history_tag(alias), ",".join(history[:-1]))
        return previous

    def versions(self) -> list[dict[str, Any]]:
        client = self._client()
        found = client.search_model_versions(f"name='{self.name}'")
        out = []
        for mv in sorted(found, key=lambda m: int(m.version), reverse=True):
            full = client.get_model_version(self.name, mv.version)  # search omits aliases
            out.append(
                {
                    "version": str(full.version),
                    "aliases": list(full.aliases),
                    "tags": dict(full.tags),
                    "run_id": full.run_id,
                    "created": full.creation_timestamp,
                    "description": full.description,
                }
            )
        return out

    def version_for_alias(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self._client().get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self._client().get_model_version(self.name, version).tags)


def _history_tag(alias: str) -> str:
    return f"stockpipe.alias_history.{alias}"


def _parse_registry_uri(uri: str) -> tuple[str, str | None, str | None] | None:
    """models:/Name@alias -> (Name, None, alias); models:/Name/3 -> (Name, '3', None)."""
    if not uri.startswith("models:/") or uri.startswith("models:/m-"):
        return None
    body = uri[len("models:/") :]
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, None, alias
    name, _, version = body.partition("/")
    if not version:
        raise TrackingError(f"model URI {uri!r} needs a version or an alias (Name@alias)")
    return name, version, None


class MlflowModelLoader:
    """Loads a model by URI through pyfunc (schema-enforced) and reads its registry tags."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def load(self, model_uri: str) -> Any:
        import mlflow
        import mlflow.pyfunc
        from mlflow.exceptions import MlflowException

        from pipeline.serving.score import LoadedModel

        mlflow.set_tracking_uri(self.uri)
        client = mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        name = version = None
        tags: dict[str, str] = {}
        parsed = _parse_registry_uri(model_uri)
        try:
            if parsed is not None:
                name, version, alias = parsed
                mv = (
                    client.get_model_version_by_alias(name, alias)
                    if alias
                    else client.get_model_version(name, str(version))
                )
                version, tags = str(mv.version), dict(mv.tags)
            pyfunc_model = mlflow.pyfunc.load_model(model_uri)
        except MlflowException as exc:
            raise TrackingError(f"cannot load model {model_uri} from {self.uri}: {exc}") from exc
        raw = pyfunc_model.get_raw_model()
        features = getattr(raw, "named_steps", {}).get("features")
        warmup = int(tags.get("warmup_rows", getattr(features, "warmup_", 0)))
        horizon = int(tags["horizon"]) if "horizon" in tags else None
        return LoadedModel(
            predictor=pyfunc_model,
            name=name,
            version=version,
            warmup=warmup,
            horizon=horizon,
            benchmark=tags.get("benchmark") or None,
            raw=raw,
            tags=tags,
        )
