"""Composition root: the only place that maps configuration to concrete adapters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pipeline.config import apply_overrides
from pipeline.data.readers import FileOptions, FileSource
from pipeline.data.validation import ContractPolicy
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import DataPorts, PriceSource, scratch_warehouse
from pipeline.serving.score import ScorePorts, model_uris
from pipeline.settings import StockpipeConfig
from pipeline.tracking.loader import MlflowModelLoader, MlflowVersionResolver

if TYPE_CHECKING:
    # Imported where used, so each command pays only for its own adapters: `score` must not
    # import training (optuna, matplotlib, scipy.stats via the evaluation reports), the
    # yfinance path (pandas) or monitoring (scipy, matplotlib).
    from pipeline.data.snapshots import SnapshotStore
    from pipeline.data.yahoo import YFinanceSource
    from pipeline.monitoring.monitor import MonitorPorts
    from pipeline.serving.reload import ModelFollower
    from pipeline.tracking.mlflow_adapter import MlflowRegistry, MlflowTracker
    from pipeline.training.backtest import BacktestPorts
    from pipeline.training.callbacks import Progress
    from pipeline.training.job import TrainPorts

__all__ = ["apply_overrides"]  # re-exported: the CLI applies flags through the config edge


def tracker(cfg: StockpipeConfig) -> MlflowTracker:
    from pipeline.tracking.mlflow_adapter import MlflowTracker

    return MlflowTracker(
        cfg.tracking_uri, cfg.tracking.experiment, cfg.resolve(cfg.tracking.artifact_location)
    )


def loader(cfg: StockpipeConfig) -> MlflowModelLoader:
    """Loads registered models by URI (models:/Name@alias, models:/Name/3, models:/m-...)."""
    return MlflowModelLoader(cfg.tracking_uri, cfg.tracking.stage_aliases)


def registry(cfg: StockpipeConfig, horizon: int | None = None) -> MlflowRegistry:
    """The registered model of ``horizon`` (the primary one by default)."""
    from pipeline.tracking.mlflow_adapter import MlflowRegistry

    name = cfg.registered_model_for(horizon) if horizon else cfg.tracking.registered_model
    return MlflowRegistry(cfg.tracking_uri, name)


def contract_policy(cfg: StockpipeConfig) -> ContractPolicy:
    c = cfg.data.contract
    return ContractPolicy(
        missing=c.missing,
        max_abs_log_return=c.max_abs_log_return,
        max_gap_business_days=c.max_gap_business_days,
        max_staleness_days=c.max_staleness_days,
    )


def file_options(cfg: StockpipeConfig) -> FileOptions:
    return FileOptions(
        columns=cfg.data.columns, adjustment=cfg.data.adjustment, policy=contract_policy(cfg)
    )


def snapshots(cfg: StockpipeConfig) -> SnapshotStore:
    from pipeline.data.snapshots import SnapshotStore

    return SnapshotStore(cfg.resolve(cfg.data.raw_dir))


def source(cfg: StockpipeConfig) -> PriceSource:
    """Pinned or latest snapshots, or the configured file (the shipped sample by default)."""
    if cfg.data.snapshot or cfg.data.source == "snapshots":
        from pipeline.data.snapshots import SnapshotSource

        return SnapshotSource(snapshots(cfg), cfg.data.tickers, cfg.data.snapshot)
    return FileSource(cfg.resolve(cfg.data.path), cfg.data.tickers, file_options(cfg))


def yfinance_source(cfg: StockpipeConfig, tickers: tuple[str, ...]) -> YFinanceSource:
    from pipeline.data.yahoo import YFinanceSource

    f = cfg.data.fetch
    return YFinanceSource(
        tickers,
        f.start,
        f.end,
        f.interval,
        cfg.data.adjustment,
        f.retries,
        f.backoff_seconds,
        f.timeout_seconds,
        contract_policy(cfg),
    )


def store(cfg: StockpipeConfig) -> DuckDBStore:
    return DuckDBStore(cfg.resolve(cfg.data.warehouse))


def benchmark_source(cfg: StockpipeConfig) -> FileSource | None:
    path = cfg.data.benchmark_path
    return None if path is None else FileSource(cfg.resolve(path), None, file_options(cfg))


def train_ports(cfg: StockpipeConfig, progress: Progress | None = None) -> TrainPorts:
    from pipeline.training.callbacks import NoProgress
    from pipeline.training.job import TrainPorts

    return TrainPorts(
        source=source(cfg),
        store=store(cfg),
        tracker=tracker(cfg),
        registry=registry(cfg),
        benchmark=benchmark_source(cfg),
        loader=loader(cfg),
        progress=progress or NoProgress(),
        snapshots=snapshots(cfg),
        registries={h: registry(cfg, h) for h in cfg.horizons},
    )


@contextmanager
def progress(quiet: bool) -> Iterator[Progress]:
    """A rich progress display on stderr, or nothing with ``--quiet``."""
    if quiet:
        from pipeline.training.callbacks import NoProgress

        yield NoProgress()
        return
    from pipeline.training.progress import CandidateProgress

    with CandidateProgress() as bars:
        yield bars


def score_ports(cfg: StockpipeConfig) -> ScorePorts:
    warehouse = store(cfg)
    return ScorePorts(
        source=source(cfg),
        store=warehouse,
        benchmark=benchmark_source(cfg),
        loader=loader(cfg),
        log=warehouse,  # the prediction log is a table of the warehouse
    )


def data_ports(cfg: StockpipeConfig, in_memory: bool = False) -> DataPorts:
    """Data ports; workers use a private in-memory warehouse (nothing to share or lock)."""
    return DataPorts(
        source=source(cfg),
        store=scratch_warehouse() if in_memory else store(cfg),
        benchmark=benchmark_source(cfg),
    )


def backtest_ports(cfg: StockpipeConfig) -> BacktestPorts:
    # A backtest is an analysis of its input: it computes in memory and leaves the warehouse
    # as it was (a failed backtest leaves no trace there).
    from pipeline.training.backtest import BacktestPorts

    return BacktestPorts(
        source=source(cfg),
        store=scratch_warehouse(),
        benchmark=benchmark_source(cfg),
        loader=loader(cfg),
        tracker=tracker(cfg),
    )


def version_resolver(cfg: StockpipeConfig) -> MlflowVersionResolver:
    """Which version a model URI names now: what `serve` polls to follow an alias."""
    return MlflowVersionResolver(cfg.tracking_uri, cfg.tracking.stage_aliases)


def model_follower(
    cfg: StockpipeConfig, model_uri: str | None = None, interval: float | None = None
) -> ModelFollower:
    """A model `serve` serves: loaded in the background, hot-reloaded when its URI follows an
    alias (the champion by default), polled every ``serving.reload_interval_seconds``."""
    from pipeline.serving.reload import ModelFollower

    return ModelFollower(
        loader(cfg),
        version_resolver(cfg),
        model_uri or cfg.tracking.champion_uri,
        interval or cfg.serving.reload_interval_seconds,
    )


def model_followers(
    cfg: StockpipeConfig, model_uri: str | None = None, interval: float | None = None
) -> dict[int, ModelFollower]:
    """What `serve` serves, by the horizon each model was configured for (primary first):
    ``model_uri`` alone (standing for the primary horizon), or else every configured
    horizon's champion, each followed (and hot-reloaded) on its own."""
    uris = model_uris(cfg, model_uri)  # the same models `score` would use
    horizons = cfg.horizons[: len(uris)]
    # A loader and a resolver each: every follower polls and loads in a thread of its own.
    return {h: model_follower(cfg, uri, interval) for h, uri in zip(horizons, uris, strict=True)}


def monitor_ports(cfg: StockpipeConfig) -> MonitorPorts:
    """`monitor`: the data and warehouse (whose prediction log it reads), the model and its
    references in MLflow, and the tracker its monitoring run is logged to."""
    from pipeline.monitoring.monitor import MonitorPorts
    from pipeline.monitoring.references import MlflowReferences

    warehouse = store(cfg)
    return MonitorPorts(
        source=source(cfg),
        store=warehouse,
        benchmark=benchmark_source(cfg),
        loader=loader(cfg),
        tracker=tracker(cfg),
        references=MlflowReferences(cfg.tracking_uri),
        outcomes=warehouse,  # the prediction log is a table of the warehouse
    )
