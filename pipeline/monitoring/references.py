"""Reading a version's reference data from MLflow: its profile and the backtest's predictions.

Both were logged by ``train`` on the training job's run, which the version's
``reference_run_id`` tag names. A version registered before profiles existed has no such tag:
``None`` then, which the report shows as ``unavailable`` with the reason.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import polars as pl

from pipeline.domain import LoadedModel
from pipeline.errors import TrackingError
from pipeline.monitoring.profile import (
    BACKTEST_PREDICTIONS,
    PROFILE_ARTIFACT,
    PROFILE_TAG,
    ReferenceProfile,
)


class References(Protocol):
    """Where a version's reference profile and backtest predictions are kept."""

    def profile(self, model: LoadedModel) -> ReferenceProfile | None: ...

    def backtest_predictions(self, model: LoadedModel) -> pl.DataFrame | None: ...


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a download progress bar on stderr, which would break --log-json lines."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


class MlflowReferences:
    """The References port on the MLflow store the model was loaded from."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def _download(self, run_id: str, artifact: str, folder: Path) -> Path:
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        try:
            with _no_progress_bar():
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id,
                    artifact_path=artifact,
                    dst_path=str(folder),
                    tracking_uri=self.uri,
                )
        except (MlflowException, OSError) as exc:
            raise TrackingError(f"cannot read {artifact} of run {run_id}: {exc}") from exc
        return Path(local)

    def profile(self, model: LoadedModel) -> ReferenceProfile | None:
        """The version's profile; None if it has none; TrackingError if it cannot be read."""
        run_id = model.tags.get(PROFILE_TAG)
        if not run_id:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            path = self._download(run_id, PROFILE_ARTIFACT, Path(tmp))
            return ReferenceProfile.model_validate_json(path.read_text(encoding="utf-8"))

    def backtest_predictions(self, model: LoadedModel) -> pl.DataFrame | None:
        """The backtest's out-of-sample rows (ticker, date, fold, prediction, realised)."""
        run_id = model.tags.get(PROFILE_TAG)
        if not run_id:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            return pl.read_parquet(self._download(run_id, BACKTEST_PREDICTIONS, Path(tmp)))
