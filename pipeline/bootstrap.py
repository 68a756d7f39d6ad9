"""Composition root: the only place that maps configuration to concrete adapters."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import apply_overrides
from pipeline.data.predlog import log_path
from pipeline.data.readers import FileOptions, FileSource
from pipeline.data.snapshots import SnapshotSource, SnapshotStore
from pipeline.data.validation import ContractPolicy
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import DataPorts, PriceBatch, PriceSource, PriceStore
from pipeline.errors import DataError
from pipeline.monitoring.references import MlflowReferences
from pipeline.serving.reload import ModelFollower
from pipeline.serving.requeststore import BufferedRequests, RequestStore
from pipeline.serving.score import ScorePorts, model_uris
from pipeline.settings import StockpipeConfig
from pipeline.tracking.loader import MlflowModelLoader, MlflowVersionResolver, TrainedOn
from pipeline.tracking.mlflow_adapter import MlflowRegistry, MlflowTracker

if TYPE_CHECKING:
    import datetime as dt

    # Imported where used, so each command pays only for its own adapters: `score` must not
    # import training (optuna, matplotlib, scipy.stats via the evaluation reports), the
    # yfinance path (pandas) or monitoring (scipy, matplotlib). The adapters imported above
    # cost a few milliseconds once the warehouse and the model loader are in.
    from pipeline.data.yahoo import YFinanceSource
    from pipeline.monitoring.monitor import MonitorPorts
    from pipeline.operations.ports import CyclePorts, Ingest, Steps
    from pipeline.operations.sources import Download
    from pipeline.serving.export import ExportPorts
    from pipeline.training.backtest import BacktestPorts
    from pipeline.training.callbacks import Progress
    from pipeline.training.job import TrainPorts

__all__ = ["apply_overrides"]  # re-exported: the CLI applies flags through the config edge

log = logging.getLogger(__name__)


def tracker(cfg: StockpipeConfig) -> MlflowTracker:
    """The tracking store runs and models are logged to."""
    return MlflowTracker(
        cfg.tracking_uri, cfg.tracking.experiment, cfg.resolve(cfg.tracking.artifact_location)
    )


def loader(cfg: StockpipeConfig) -> MlflowModelLoader:
    """Loads registered models by URI (models:/Name@alias, models:/Name/3, models:/m-...)."""
    return MlflowModelLoader(cfg.tracking_uri, cfg.stage_aliases)


def registry(cfg: StockpipeConfig, horizon: int | None = None) -> MlflowRegistry:
    """The registered model of ``horizon`` (the primary one by default)."""
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
    """The raw snapshot store."""
    return SnapshotStore(cfg.resolve(cfg.data.raw_dir))


def source(cfg: StockpipeConfig) -> PriceSource:
    """Pinned or latest snapshots, or the configured file (the shipped sample by default)."""
    if cfg.data.snapshot or cfg.data.source == "snapshots":
        return SnapshotSource(snapshots(cfg), cfg.data.tickers, cfg.data.snapshot)
    return FileSource(cfg.resolve(cfg.data.path), cfg.data.tickers, file_options(cfg))


def yfinance_source(cfg: StockpipeConfig, tickers: tuple[str, ...]) -> YFinanceSource:
    from pipeline.data.yahoo import YFinanceSource

    f = cfg.data.fetch
    return YFinanceSource(
        tickers,
        f.start,
        f.end,
        # Daily bars and the retry backoff are the source's own constants, not settings.
        adjustment=cfg.data.adjustment,
        retries=f.retries,
        timeout_seconds=f.timeout_seconds,
        policy=contract_policy(cfg),
    )


def store(cfg: StockpipeConfig) -> DuckDBStore:
    """The configured warehouse."""
    return DuckDBStore(cfg.resolve(cfg.data.warehouse))


def scratch_warehouse() -> PriceStore:
    """A fresh in-memory warehouse, where a job plans or computes before writing anything real.

    An in-memory DuckDB is computation, not I/O, so every use case gets one as its
    ``workspace`` (``DataPorts``): the ports themselves name no adapter.
    """
    return DuckDBStore(":memory:")


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
        workspace=scratch_warehouse,
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


def score_ports(cfg: StockpipeConfig, data: ModelData | None = None) -> ScorePorts:
    """`score`: ``data`` (see :func:`model_data`), or the configured data."""
    warehouse = store(cfg)
    return ScorePorts(
        source=data.source if data else source(cfg),
        store=warehouse,
        benchmark=data.benchmark if data else benchmark_source(cfg),
        loader=loader(cfg),
        log=warehouse.log,  # the prediction log: its own SQLite file beside the warehouse
        workspace=scratch_warehouse,
    )


def data_ports(cfg: StockpipeConfig, in_memory: bool = False) -> DataPorts:
    """Data ports; workers use a private in-memory warehouse (nothing to share or lock)."""
    return DataPorts(
        source=source(cfg),
        store=scratch_warehouse() if in_memory else store(cfg),
        benchmark=benchmark_source(cfg),
        workspace=scratch_warehouse,
    )


def backtest_ports(cfg: StockpipeConfig, data: ModelData | None = None) -> BacktestPorts:
    """`backtest`: ``data`` (see :func:`model_data`), or the configured data."""
    # A backtest is an analysis of its input: it computes in memory and leaves the warehouse
    # as it was (a failed backtest leaves no trace there).
    from pipeline.training.backtest import BacktestPorts

    return BacktestPorts(
        source=data.source if data else source(cfg),
        store=scratch_warehouse(),
        benchmark=data.benchmark if data else benchmark_source(cfg),
        loader=loader(cfg),
        tracker=tracker(cfg),
        workspace=scratch_warehouse,
    )


def version_resolver(cfg: StockpipeConfig) -> MlflowVersionResolver:
    """Which version a model URI names now: what `serve` polls to follow an alias."""
    return MlflowVersionResolver(cfg.tracking_uri, cfg.stage_aliases)


def export_ports(cfg: StockpipeConfig) -> ExportPorts:
    """`predictions`: the warehouse's prediction log (its file beside the warehouse), the
    warehouse's outcomes (None while there is no warehouse file: a host that only serves has
    the log alone, and an export creates nothing), and the registry for --model-uri."""
    from pipeline.serving.export import ExportPorts

    warehouse = store(cfg)
    prices = warehouse if Path(warehouse.path).exists() else None
    return ExportPorts(log=warehouse.log, outcomes=prices, versions=version_resolver(cfg))


def model_follower(
    cfg: StockpipeConfig, model_uri: str | None = None, interval: float | None = None
) -> ModelFollower:
    """A model `serve` serves: loaded in the background, hot-reloaded when its URI follows an
    alias (the champion by default), polled every ``serving.reload_interval_seconds``."""
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


def request_store(cfg: StockpipeConfig) -> RequestStore:
    """The service's request log: a table of the prediction log's file beside the warehouse
    (``sql/log/060_requests.sql``), kept to its newest rows."""
    return RequestStore(log_path(cfg.resolve(cfg.data.warehouse)))


def request_writer(cfg: StockpipeConfig) -> BufferedRequests:
    """What each serving process hands its requests to: queued, written by a thread."""
    return BufferedRequests(request_store(cfg))


def monitor_ports(cfg: StockpipeConfig, data: ModelData | None = None) -> MonitorPorts:
    """`monitor`: the data (``data``, see :func:`model_data`, or the configured data) and
    warehouse (whose prediction log and request log it reads), the model and its references
    in MLflow, and the tracker its monitoring run is logged to."""
    from pipeline.monitoring.monitor import MonitorPorts

    warehouse = store(cfg)
    return MonitorPorts(
        source=data.source if data else source(cfg),
        store=warehouse,
        benchmark=data.benchmark if data else benchmark_source(cfg),
        loader=loader(cfg),
        tracker=tracker(cfg),
        references=MlflowReferences(cfg.tracking_uri),
        outcomes=warehouse,  # the prediction log joined to the warehouse's prices
        requests=request_store(cfg),  # the service's request log (latency per endpoint)
        workspace=scratch_warehouse,
    )


def cycle_ports(cfg: StockpipeConfig, given: bool) -> CyclePorts:
    """`cycle`: its lock and records in ``operations.records_dir``; the ingest step (the
    ``given`` --data file, else ``operations.ingest``: the configured file, or yfinance since
    each ticker's last stored date); score, monitor and train on that one validated batch,
    cut at the as-of date; the registry and the prediction log its decisions read."""
    from functools import partial

    from pipeline.operations.adapters import LiveSteps, LogScoredDates, RegistryModels
    from pipeline.operations.lock import LOCK_NAME, cycle_lock
    from pipeline.operations.ports import CyclePorts
    from pipeline.operations.record import RecordStore
    from pipeline.operations.sources import UpTo

    folder, warehouse, raw = cfg.resolve(cfg.operations.records_dir), store(cfg), snapshots(cfg)
    data, ingest = _cycle_data(cfg, given, warehouse, raw)
    bench = benchmark_source(cfg)

    def steps(as_of: dt.date) -> Steps:
        src = UpTo(data, as_of)  # every step of the evening reads the same batch
        score = ScorePorts(
            source=src,
            store=warehouse,
            benchmark=bench,
            loader=loader(cfg),
            log=warehouse.log,
            workspace=scratch_warehouse,
        )
        return LiveSteps(
            cfg,
            score,
            lambda: replace(monitor_ports(cfg), source=src, benchmark=bench),
            lambda: replace(train_ports(cfg), source=src, benchmark=bench),
            folder,
            as_of,
        )

    names = {h: cfg.registered_model_for(h) for h in cfg.horizons}
    alias, primary = cfg.tracking.champion_alias, cfg.model.target.horizon
    return CyclePorts(
        lock=partial(cycle_lock, folder / LOCK_NAME),
        tracker=tracker(cfg),
        ingest=ingest,
        steps=steps,
        models=RegistryModels(cfg.tracking_uri, names, alias, primary, raw),
        scored=LogScoredDates(warehouse.log),
        records=RecordStore(folder),
    )


def _cycle_data(
    cfg: StockpipeConfig, given: bool, warehouse: DuckDBStore, raw: SnapshotStore
) -> tuple[PriceSource, Ingest]:
    """The prices the cycle's steps read, and its ingest step, by mode."""
    from pipeline.operations import sources as ops

    stored_label = f"warehouse {warehouse.path}"
    if given or cfg.operations.ingest == "file":
        path = cfg.resolve(cfg.data.path)
        file = ops.CachedSource(FileSource(path, cfg.data.tickers, file_options(cfg)))
        history = ops.WarehouseSource(warehouse, lambda: file.load().tickers, stored_label)
        read = ops.CachedSource(ops.FileOrStored(file, history))  # read after the ingest
        label = f"--data {path}" if given else f"data.path {path}"
        return read, ops.FileIngest(file, read, raw, warehouse, label)

    def tickers() -> tuple[str, ...]:
        names = cfg.data.tickers or loader(cfg).trained_on(cfg.tracking.champion_uri).tickers
        if not names:
            raise DataError("operations.ingest: fetch needs data.yaml tickers (or a champion)")
        return names

    def download(names: tuple[str, ...], start: dt.date | None) -> Download:
        return yfinance_source(apply_overrides(cfg, start=start) if start else cfg, names)

    stored = ops.CachedSource(ops.WarehouseSource(warehouse, tickers, stored_label))
    return stored, ops.FetchIngest(tickers, download, raw, warehouse, stored)


# --------------------------------------------------------------------------- the model's data


@dataclass(frozen=True)
class ModelData:
    """The prices a command that applies a model reads, and the line that says which."""

    source: PriceSource
    benchmark: PriceSource | None
    note: str  # "data: ...": printed by the command, so no run leaves its input unnamed


def model_data(
    cfg: StockpipeConfig,
    model_uri: str | None,
    *,
    given: bool,
    replay: bool,
    refuse_other_tickers: bool = False,
) -> ModelData:
    """The data `backtest`, `monitor` and `score` read for the model behind ``model_uri``.

    Without ``given`` data (``--data``/``--snapshot``), the model's own, from its lineage
    (:class:`TrainedOn`). With ``replay`` (`backtest`): the very snapshots it was trained on,
    panel and benchmark, so the backtest re-measures what training measured. Otherwise
    (`score`, `monitor`, which look at *new* data): the same source as it is now, the file
    it was trained from (re-read, its tickers only), or the newest raw snapshots of its
    tickers when it was trained from snapshots or that file is gone. Its training snapshot
    would score stale dates, and monitor the model against its own training window.

    data.yaml says what `train` reads: here it is the fallback when the lineage names no
    data or its snapshots are gone, with a warning saying why. Given data is used as asked,
    with a warning when it is not the model's. Configured or given data whose tickers are
    not the model's is warned about, or refused (DataError, exit 2) with
    ``refuse_other_tickers`` (`monitor`: drift against another panel's profile is wrong).
    """
    trained = loader(cfg).trained_on(model_uri or cfg.tracking.champion_uri)
    refuse = refuse_other_tickers
    if given:
        if trained.recorded and not _is_origin(cfg, trained):
            log.warning(
                "%s is not the data %s was trained on (%s): using it as asked",
                _configured_label(cfg, given),
                trained.model,
                _trained_label(trained, snapshots(cfg)),
            )
        return _configured(cfg, trained, given, refuse, "given")
    try:
        return _replayed(cfg, trained) if replay else _current(cfg, trained)
    except DataError as why:
        log.warning("%s: using the configured data instead", why)
        return _configured(cfg, trained, given, refuse, f"configured, as {why}")


def _configured(
    cfg: StockpipeConfig, trained: TrainedOn, given: bool, refuse: bool, why: str
) -> ModelData:
    label, src = _configured_label(cfg, given), source(cfg)
    if trained.tickers:
        # Refusing: say what gives the model its own data (gone, when not given).
        hint = "run without --data/--snapshot" if given else "pass --data with its data"
        src = _ModelTickers(src, trained, label, hint if refuse else None)
    return ModelData(src, benchmark_source(cfg), f"data: {label} ({why})")


def _replayed(cfg: StockpipeConfig, trained: TrainedOn) -> ModelData:
    """The snapshots the model was trained on, panel and benchmark."""
    if not trained.recorded:
        raise DataError(f"{trained.model} records no training data (no snapshot_ids tag)")
    store = snapshots(cfg)
    _require(store, trained.snapshot_ids, trained.model)
    _require(store, trained.benchmark_snapshot_ids, trained.model)
    bench_ids = ",".join(trained.benchmark_snapshot_ids)
    return ModelData(
        SnapshotSource(store, None, ",".join(trained.snapshot_ids)),
        SnapshotSource(store, None, bench_ids) if bench_ids else benchmark_source(cfg),
        f"data: {trained.model}'s training data, {_trained_label(trained, store)}"
        + _unused(cfg, _origin(store, trained)),
    )


def _current(cfg: StockpipeConfig, trained: TrainedOn) -> ModelData:
    """The source the model was trained from, as it is now: its file, or its newest
    snapshots (a model trained from snapshots, or whose file is gone)."""
    if not trained.tickers:
        raise DataError(f"{trained.model} records no training data (no tickers tag)")
    store, tickers = snapshots(cfg), trained.tickers
    origin, named = _origin(store, trained), ", ".join(tickers)
    what = f"{trained.model} was trained on ({_trained_label(trained, store)})"
    if origin and all(p.is_file() for p in FileSource(Path(origin), tickers).paths()):
        note = f"data: {origin} as it is now, {named}: the file {what}"
        source_ = FileSource(Path(origin), tickers, file_options(cfg))
        return ModelData(source_, benchmark_source(cfg), note + _unused(cfg, origin))
    if origin:
        log.warning("%s is gone: using the newest snapshots of %s instead", origin, named)
    newest = ", ".join(s.id for s in store.latest(tickers))  # DataError if a ticker has none
    note = f"data: the newest snapshots of {named} ({newest}); {what}"
    return ModelData(SnapshotSource(store, tickers), benchmark_source(cfg), note + _unused(cfg))


def _require(store: SnapshotStore, ids: tuple[str, ...], model: str) -> None:
    """DataError naming the first of ``ids`` whose manifest entry or file is gone."""
    known = {s.id: s for s in store.entries()}
    for snap_id in ids:
        if snap_id not in known:
            raise DataError(f"snapshot {snap_id} of {model} is not in {store.manifest}")
        if not (store.root / known[snap_id].path).is_file():
            path = store.root / known[snap_id].path
            raise DataError(f"snapshot {snap_id} of {model} is gone ({path} is missing)")


def _origin(store: SnapshotStore, trained: TrainedOn) -> str | None:
    """The file (or pattern) the model was trained from; None when it was snapshots.

    Models older than the ``data_source`` tag: the path their snapshots were imported from,
    when the manifest still says (one path for them all)."""
    if trained.source is not None:
        return trained.source or None
    known = {s.id: s for s in store.entries()}
    paths = {str(known[i].params.get("path", "")) for i in trained.snapshot_ids if i in known}
    return paths.pop() if len(paths) == 1 and "" not in paths else None


def _trained_label(trained: TrainedOn, store: SnapshotStore) -> str:
    ids = list(trained.snapshot_ids)
    shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    origin = _origin(store, trained) or "raw snapshots"
    return f"{', '.join(trained.tickers)} from {origin}, snapshot(s) {shown or 'unrecorded'}"


def _configured_label(cfg: StockpipeConfig, given: bool) -> str:
    d = cfg.data
    if d.snapshot:
        return f"{'--snapshot' if given else 'data.yaml snapshot'} {d.snapshot}"
    if d.source == "snapshots":
        return f"data.yaml's newest snapshots of {', '.join(d.tickers or ())}"
    return f"{'--data ' if given else ''}{cfg.resolve(d.path)}"


def _configured_file(cfg: StockpipeConfig) -> str | None:
    """The file (or pattern) the configuration reads; None when it reads snapshots."""
    d = cfg.data
    return str(cfg.resolve(d.path)) if d.source == "file" and not d.snapshot else None


def _is_origin(cfg: StockpipeConfig, trained: TrainedOn) -> bool:
    """Whether the configured (or given) data names what the model was trained on."""
    if cfg.data.snapshot:
        return {s.strip() for s in cfg.data.snapshot.split(",")} == set(trained.snapshot_ids)
    origin = _origin(snapshots(cfg), trained)
    return origin is not None and _configured_file(cfg) == origin


def _unused(cfg: StockpipeConfig, origin: str | None = None) -> str:
    """What the note adds when data.yaml names other data: that it was left alone."""
    if origin is not None and _configured_file(cfg) == origin:
        return ""
    return f"; not the configured {_configured_label(cfg, False)} (pass --data to read that)"


class _ModelTickers:
    """A PriceSource that checks the tickers it reads are the model's: warns, or refuses
    (DataError) when given ``refuse``, the hint saying how to monitor the model's own data."""

    def __init__(
        self, inner: PriceSource, trained: TrainedOn, label: str, refuse: str | None
    ) -> None:
        self.inner, self.trained, self.label, self.refuse = inner, trained, label, refuse

    def load(self) -> PriceBatch:
        batch = self.inner.load()
        if set(batch.tickers) == set(self.trained.tickers):
            return batch
        problem = (
            f"{self.label} holds {', '.join(batch.tickers)} but {self.trained.model} was "
            f"trained on {', '.join(self.trained.tickers)}"
        )
        if self.refuse:
            raise DataError(
                f"{problem}: drift against its training profile would be wrong. To monitor "
                f"the model's own data {self.refuse}; to monitor this data anyway pass "
                "--allow-other-data"
            )
        log.warning("%s", problem)
        return batch
