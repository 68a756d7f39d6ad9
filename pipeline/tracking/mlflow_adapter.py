"""MLflow adapters for the Tracker, Run and Registry ports.

The embedded default is a sqlite store plus a local artifact folder, both created on first
use. A server URI (http://...) is checked before any computation so that a long competition
never dies at the end because the server was down at the start. Every adapter reaches its
store through ``store.ensure_store`` (locked first-time creation, fast reachability probe).
The registry and the model loader live in their own modules and are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from pipeline.tracking.loader import MlflowModelLoader
from pipeline.tracking.orphans import owner_tags, reap_orphans
from pipeline.tracking.registry import MlflowRegistry, settle_all_pending
from pipeline.tracking.store import ensure_store

__all__ = [
    "SKOPS_TRUSTED_TYPES",
    "MlflowModelLoader",
    "MlflowRegistry",
    "MlflowRun",
    "MlflowTracker",
    "pip_requirements",
]

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
        """Reach the store (creating a sqlite one) before any work, then mark this host's
        orphan runs of the experiment KILLED and settle registrations a dead process left
        half done (``registry.settle_all_pending``), before the gate reads the champion.
        Raises TrackingError if the store is unusable."""
        ensure_store(self.uri)
        self.reap_orphans()
        settle_all_pending(self.uri)

    def reap_orphans(self) -> list[str]:
        """Mark RUNNING runs whose process on this host is gone KILLED; return their ids."""
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=self.uri)
        exp = client.get_experiment_by_name(self.experiment)
        return [] if exp is None else reap_orphans(client, str(exp.experiment_id))

    def _experiment_id(self) -> str:
        import mlflow

        if self._exp_id is None:
            ensure_store(self.uri)
            mlflow.set_tracking_uri(self.uri)
            self._exp_id = self._find_or_create_experiment(mlflow.MlflowClient())
        return self._exp_id

    def _find_or_create_experiment(self, client: Any) -> str:
        from mlflow.exceptions import MlflowException

        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return str(exp.experiment_id)
        location = None
        if self.uri.startswith("sqlite:///"):
            self.artifact_location.mkdir(parents=True, exist_ok=True)
            location = self.artifact_location.resolve().as_uri()
        try:
            return str(client.create_experiment(self.experiment, artifact_location=location))
        except MlflowException:
            # Another process created it since our lookup ("already exists"): use theirs.
            exp = client.get_experiment_by_name(self.experiment)
            if exp is None:
                raise
            return str(exp.experiment_id)

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
        """One finished Optuna trial as a child run of ``parent`` (created and closed here);
        ``artifact``, a local file, is logged under the run's ``trial/`` artifact path."""
        import mlflow
        from mlflow.entities import Metric, Param

        client = mlflow.MlflowClient(tracking_uri=self.uri)
        run = client.create_run(
            self._experiment_id(),
            run_name=name,
            tags={"mlflow.parentRunId": parent.run_id, **owner_tags(), **tags},
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
        if artifact is not None:
            client.log_artifact(run.info.run_id, str(artifact), "trial")
        status = {"complete": "FINISHED", "pruned": "KILLED"}.get(state, "FAILED")
        client.set_terminated(run.info.run_id, status=status)

    @contextmanager
    def start_run(self, name: str, parent: Any = None) -> Iterator[MlflowRun]:
        """Open a run (nested under the active one if ``parent``), tagged with its owner
        process so that a later ``check`` can tell an orphan from a live run."""
        import mlflow

        experiment_id = self._experiment_id()
        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=name,
            nested=parent is not None,
            tags=owner_tags(),
        ) as run:
            try:
                yield MlflowRun(run.info.run_id)
            except KeyboardInterrupt:
                # Stopped by Ctrl-C or SIGTERM, which is not a failure of the job: KILLED,
                # like the reaper's mark (the context manager would say FAILED).
                mlflow.end_run("KILLED")
                raise
