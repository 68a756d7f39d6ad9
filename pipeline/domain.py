"""Domain types and the ports (Protocols) through which use cases reach the outside world.

Use cases in ``pipeline.training`` and ``pipeline.serving`` take these ports as arguments; the
composition root (``pipeline.bootstrap``) binds them to DuckDB, MLflow and files, and unit tests
bind them to hand-written fakes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from pipeline.evaluation.intervals import IntervalCalibration

PRICE_COLUMNS: tuple[str, ...] = ("ticker", "date", "open", "high", "low", "close", "volume")
# What `score` writes and `POST /predict` returns, one row per ticker.
PREDICTION_COLUMNS: tuple[str, ...] = (
    "ticker",
    "as_of_date",
    "horizon",
    "prediction",
    "model_name",
    "model_version",
)
# The prediction log's columns (sql/050_predictions.sql): the above, plus where they came from.
LOG_COLUMNS: tuple[str, ...] = (*PREDICTION_COLUMNS, "run_id", "scored_at", "source")


@dataclass(frozen=True)
class PriceBatch:
    """Validated prices in canonical schema plus where they came from."""

    frame: pl.DataFrame
    source: str
    sha256: str
    snapshots: tuple[str, ...] = ()  # raw snapshot ids this batch was read from or stored as

    @property
    def tickers(self) -> tuple[str, ...]:
        return tuple(sorted(self.frame.get_column("ticker").unique().to_list()))

    @property
    def ranges(self) -> dict[str, tuple[dt.date, dt.date]]:
        """First and last date per ticker: the window a job reads back from the warehouse."""
        agg = self.frame.group_by("ticker").agg(
            pl.col("date").min().alias("lo"), pl.col("date").max().alias("hi")
        )
        return {r["ticker"]: (r["lo"], r["hi"]) for r in agg.iter_rows(named=True)}


@dataclass(frozen=True)
class Fold:
    """One walk-forward split over the trading calendar (inclusive date bounds)."""

    fold: int
    train_start: dt.date
    train_end: dt.date
    test_start: dt.date
    test_end: dt.date
    train_rows: int
    test_rows: int


@dataclass(frozen=True)
class FoldSpec:
    """The walk-forward layout bound into the fold-manifest view (``sql/040_v_folds.sql``)."""

    n_folds: int
    test_size: int
    horizon: int
    purge: int
    scheme: str = "expanding"
    step: int | None = None
    embargo: int = 0
    min_train_size: int = 500
    max_train_size: int | None = None
    # Each ticker's first `warmup` rows have undefined features and are never trained or
    # tested on: the manifest counts rows and days from the first usable one.
    warmup: int = 0

    def sql_values(self) -> list[object]:
        """Values in the column order of the ``fold_params`` table."""
        return [
            self.scheme,
            self.n_folds,
            self.test_size,
            self.step,
            self.purge,
            self.embargo,
            self.min_train_size,
            self.max_train_size,
            self.horizon,
            self.warmup,
        ]


class PriceSource(Protocol):
    """Anything that can produce a validated batch of daily prices."""

    def load(self) -> PriceBatch: ...


class PriceStore(Protocol):
    """The warehouse: upserts batches and serves clean history and fold manifests."""

    def upsert(self, batch: PriceBatch) -> int: ...

    def history(
        self,
        tickers: tuple[str, ...],
        benchmark: str | None = None,
        rows: int | None = None,
        ranges: Mapping[str, tuple[dt.date, dt.date]] | None = None,
    ) -> pl.LazyFrame: ...

    def folds(
        self,
        tickers: tuple[str, ...],
        spec: FoldSpec,
        ranges: Mapping[str, tuple[dt.date, dt.date]] | None = None,
    ) -> list[Fold]: ...


class Run(Protocol):
    """An open tracking run."""

    run_id: str

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def log_text(self, text: str, artifact_file: str) -> None: ...

    def log_artifact(self, local_path: Path, artifact_dir: str | None = None) -> None: ...

    def log_model(self, model: Any, input_example: Any, tags: Mapping[str, str]) -> str:
        """Log a fitted sklearn pipeline; return its model URI."""
        ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...


class Tracker(Protocol):
    """Experiment tracking (MLflow in production)."""

    uri: str

    def check(self) -> None:
        """Raise TrackingError now if the store cannot be reached."""
        ...

    def start_run(self, name: str, parent: Run | None = None) -> AbstractContextManager[Run]: ...

    def log_trial(
        self,
        parent: Run,
        name: str,
        params: Mapping[str, Any],
        per_fold: list[dict[str, float]],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        state: str,
        artifact: Path | None = None,
    ) -> None:
        """Record one finished tuning trial as a closed nested run under ``parent``, with the
        file ``artifact`` (if any) logged under the run's ``trial/`` artifact path."""
        ...


class Registry(Protocol):
    """Model registry with aliases."""

    def register(
        self, model_uri: str, run_id: str, tags: Mapping[str, str], description: str = ""
    ) -> str:
        """Register a new version; return its version number as a string."""
        ...

    def set_alias(self, alias: str, version: str, record: bool = False) -> None:
        """Point ``alias`` at ``version``; ``record`` appends it to the alias's history."""
        ...

    def alias_history(self, alias: str) -> list[str]:
        """Versions the alias pointed at, oldest first (for rollback)."""
        ...

    def rollback(self, alias: str) -> str:
        """Point ``alias`` back at its previous version; return that version."""
        ...

    def versions(self) -> list[dict[str, Any]]:
        """Every version with its aliases and tags, newest first."""
        ...

    def version_for_alias(self, alias: str) -> str | None: ...

    def version_tags(self, version: str) -> dict[str, str]: ...


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to predict plus what the registry knows about it."""

    predictor: Any  # anything with .predict(pandas.DataFrame) -> array
    name: str | None
    version: str | None
    warmup: int
    horizon: int | None
    benchmark: str | None = None
    raw: Any = None  # the underlying sklearn pipeline, for refitting in backtests
    run_id: str | None = None  # the MLflow run that logged the model
    tags: dict[str, str] = field(default_factory=dict)
    # Parsed once from the version's `intervals` tag; None: no prediction intervals.
    intervals: IntervalCalibration | None = None

    @property
    def feature_step(self) -> Any:
        """The fitted feature transformer leading the pipeline, or None if it has none.

        A model loaded through the registry keeps its sklearn pipeline in ``raw``; one built
        in memory is its own predictor.
        """
        pipe = self.raw if self.raw is not None else self.predictor
        return getattr(pipe, "named_steps", {}).get("features")

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The columns the feature step computes from raw bars (empty when it has none)."""
        step = self.feature_step
        if step is None or not hasattr(step, "get_feature_names_out"):
            return ()
        try:
            return tuple(str(name) for name in step.get_feature_names_out())
        except Exception:  # an unfitted or foreign step: a model without known features
            return ()


class ModelLoader(Protocol):
    def load(self, model_uri: str) -> LoadedModel: ...


class VersionResolver(Protocol):
    """Which registry version a model URI names right now: what `serve` polls to follow an
    alias (a registry lookup; no model is loaded)."""

    def follows(self, model_uri: str) -> str | None:
        """What ``model_uri`` follows (an alias, a stage's alias, ``Latest``), or None when it
        names a fixed version or a logged model; parses only, no I/O."""
        ...

    def resolve(self, model_uri: str) -> str:
        """The version ``model_uri`` names now; TrackingError if it names none."""
        ...


class PredictionLog(Protocol):
    """Where every prediction served or scored is recorded (the warehouse in production)."""

    def record(self, frame: pl.DataFrame) -> int:
        """Append rows with ``LOG_COLUMNS`` atomically; return how many."""
        ...


class PredictionSink(Protocol):
    """Where scored predictions go."""

    def write(self, frame: pl.DataFrame) -> Path: ...


@dataclass(frozen=True, kw_only=True)
class DataPorts:
    """The data side every use case shares: prices, the warehouse, the benchmark, a scratch store.

    Each use case's ports extend this class with what else it talks to (keyword-only fields,
    so a subclass may add required ports after these defaults).
    """

    source: PriceSource
    store: PriceStore
    benchmark: PriceSource | None = None  # price file of the benchmark, when not in the panel
    # A fresh scratch store per call, where a job plans or computes before writing anything
    # real: the composition root passes one (an in-memory DuckDB, bootstrap.scratch_warehouse),
    # so the ports name no adapter.
    workspace: Callable[[], PriceStore]
