"""Composition root: the only place that maps configuration to concrete adapters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.data.files import FileSource
from pipeline.data.warehouse import DuckDBStore
from pipeline.serving.score import ScorePorts
from pipeline.settings import StockpipeConfig
from pipeline.tracking.mlflow_adapter import MlflowModelLoader, MlflowRegistry, MlflowTracker
from pipeline.training.backtest import BacktestPorts
from pipeline.training.callbacks import NoProgress, Progress
from pipeline.training.inspect import DataPorts
from pipeline.training.train import TrainPorts


def apply_overrides(
    cfg: StockpipeConfig,
    *,
    data: Path | None = None,
    trials: int | None = None,
    seed: int | None = None,
    tracking_uri: str | None = None,
    summary: Path | None = None,
    n_jobs: int | None = None,
) -> StockpipeConfig:
    """Return a new config with CLI flags applied (CLI paths are relative to the cwd)."""
    update: dict[str, object] = {}
    if data is not None:
        update["data"] = cfg.data.model_copy(update={"path": data.resolve()})
    training: dict[str, object] = {}
    if trials is not None:
        training["n_trials"] = trials
    if seed is not None:
        training["seed"] = seed
    if summary is not None:
        training["summary_path"] = summary.resolve()
    if n_jobs is not None:
        training["tuning"] = cfg.training.tuning.model_copy(update={"n_jobs": n_jobs})
    if training:
        update["training"] = cfg.training.model_copy(update=training)
    if tracking_uri is not None:
        uri = tracking_uri
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            uri = "sqlite:///" + str(Path(uri[len("sqlite:///") :]).resolve())
        update["tracking"] = cfg.tracking.model_copy(update={"uri": uri})
    return cfg.model_copy(update=update) if update else cfg


def tracker(cfg: StockpipeConfig) -> MlflowTracker:
    return MlflowTracker(
        cfg.tracking_uri, cfg.tracking.experiment, cfg.resolve(cfg.tracking.artifact_location)
    )


def registry(cfg: StockpipeConfig) -> MlflowRegistry:
    return MlflowRegistry(cfg.tracking_uri, cfg.tracking.registered_model)


def source(cfg: StockpipeConfig) -> FileSource:
    return FileSource(cfg.resolve(cfg.data.path), cfg.data.tickers)


def store(cfg: StockpipeConfig) -> DuckDBStore:
    return DuckDBStore(cfg.resolve(cfg.data.warehouse))


def benchmark_source(cfg: StockpipeConfig) -> FileSource | None:
    path = cfg.data.benchmark_path
    return None if path is None else FileSource(cfg.resolve(path))


def train_ports(cfg: StockpipeConfig, progress: Progress | None = None) -> TrainPorts:
    return TrainPorts(
        source=source(cfg),
        store=store(cfg),
        tracker=tracker(cfg),
        registry=registry(cfg),
        benchmark=benchmark_source(cfg),
        loader=MlflowModelLoader(cfg.tracking_uri),
        progress=progress or NoProgress(),
    )


@contextmanager
def progress(quiet: bool) -> Iterator[Progress]:
    """A rich progress display on stderr, or nothing with ``--quiet``."""
    if quiet:
        yield NoProgress()
        return
    from pipeline.training.progress import CandidateProgress

    with CandidateProgress() as bars:
        yield bars


def score_ports(cfg: StockpipeConfig) -> ScorePorts:
    return ScorePorts(
        source=source(cfg),
        store=store(cfg),
        registry=MlflowModelLoader(cfg.tracking_uri),
        benchmark=benchmark_source(cfg),
    )


def data_ports(cfg: StockpipeConfig) -> DataPorts:
    return DataPorts(source=source(cfg), store=store(cfg), benchmark=benchmark_source(cfg))


def backtest_ports(cfg: StockpipeConfig) -> BacktestPorts:
    return BacktestPorts(
        source=source(cfg),
        store=store(cfg),
        loader=MlflowModelLoader(cfg.tracking_uri),
        tracker=tracker(cfg),
        benchmark=benchmark_source(cfg),
    )
